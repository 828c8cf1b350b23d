// The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets}, "__metadata__": {...}}, then raw data.
// Checkpoints, teachers and models exchanged with PyTorch all use it.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "scion/tensor.h"

namespace scion::safetensors {

using Named = std::vector<std::pair<std::string, Tensor>>;
using Metadata = std::map<std::string, std::string>;

// Writes atomically (scion/files.h): a temporary file in the same folder, fsync, rename,
// fsync of the folder.
// A crash at any moment leaves either the old file or the new one, never a torn one.
void save(const std::string& path, const Named& tensors, const Metadata& metadata = {});

struct Loaded {
  Named tensors;  // in file order of their data
  Metadata metadata;
};
// Throws scion::Error naming the file for a missing file, a bad header, unknown dtypes,
// offsets outside the file or overlapping data. The file is memory-mapped and each tensor
// copied out of the map, so the peak memory is the tensors', not twice the file.
Loaded load(const std::string& path);
// Only the metadata (reads the header, not the tensors): a checkpoint's plugin and config.
Metadata load_metadata(const std::string& path);

}  // namespace scion::safetensors
