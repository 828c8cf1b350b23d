// Hugging Face model directories, the layout `transformers`' from_pretrained reads and
// save_pretrained writes: config.json, the weights as one model.safetensors or as shards
// model-0000K-of-0000N.safetensors listed by model.safetensors.index.json
// ({"metadata": {"total_size": bytes}, "weight_map": {tensor name: shard file}}), and the
// tokenizer's files next to them. Only files and configs here: Scion's model parameters carry
// the Hugging Face names, and the plugins map config.json to their own configs.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "scion/dtype.h"
#include "scion/json.h"
#include "scion/safetensors.h"

namespace scion::hf {

inline constexpr char kConfigFile[] = "config.json";
inline constexpr char kWeightsFile[] = "model.safetensors";
inline constexpr char kIndexFile[] = "model.safetensors.index.json";
// transformers' default max_shard_size ("5GB": decimal gigabytes).
inline constexpr uint64_t kDefaultMaxShardBytes = 5'000'000'000ull;

// The tokenizer and generation files a directory may hold next to the model, in this order.
const std::vector<std::string>& tokenizer_file_names();

// Whether `path` is a folder holding config.json (what `load = <dir>` names).
bool is_model_directory(const std::string& path);

// config.json of the directory, parsed; throws scion::Error naming the file when it is missing
// or not a JSON object.
Json read_config(const std::string& dir);

// model.safetensors.index.json's weight_map checked (an object of tensor name -> shard file
// name, each a plain file name inside the directory): `source` names the file in errors.
std::map<std::string, std::string> parse_index(const Json& index, const std::string& source);

struct Directory {
  std::string path;
  Json config;                          // config.json
  safetensors::Named tensors;           // f32 (bf16 and f16 widened), in file order, shard by shard
  std::vector<std::string> tokenizer_files;  // paths of the tokenizer_file_names() present
};

// Reads a directory's config and weights. BF16 and F16 tensors become F32 one at a time (a
// shard's stored tensors are dropped as they are converted); F32 is kept. Integer buffers
// named *.position_ids (older BERT files) are skipped as transformers skips them; any other
// non-float tensor is refused. Throws scion::Error naming the directory's file and, where it
// applies, the tensor and shard: no config.json, no weights, a shard the index names that is
// missing, a tensor the index names that its shard lacks, a tensor its shard holds that the
// index gives to another shard (or does not list), a truncated or garbled shard.
Directory read(const std::string& dir);

struct WriteOptions {
  uint64_t max_shard_bytes = kDefaultMaxShardBytes;  // above it: shards and an index
  DType dtype = DType::f32;                          // f32 or bf16 (round to nearest even)
  std::vector<std::string> extra_files;              // copied next to the weights (tokenizer files)
  // Paths the output must not be, be inside, or contain (the files the export reads).
  std::vector<std::string> inputs;
};

// Writes a directory from_pretrained loads: config.json (its torch_dtype set to the dtype
// written: "float32" or "bfloat16"), the weights (safetensors
// __metadata__ {"format": "pt"}), one file when they fit max_shard_bytes, else shards filled
// in order (a tensor larger than the limit alone in its shard) and the index, then the extra
// files. Everything is written into a temporary sibling folder that is renamed onto `dir`
// at the end, so `dir` is either absent or complete. Refuses (scion::Error, nothing written)
// an existing `dir` that is not an empty folder, an output onto or inside an input, a
// tensor that is not floating point, an extra file that is missing or named twice.
void write(const std::string& dir, const Json& config, const safetensors::Named& tensors,
           const WriteOptions& options = {});

// The refusals of write() about the output folder alone, for a caller that checks before it
// does the work: an existing `dir` that is not an empty folder, `dir` onto or inside one of
// `inputs`, or holding one.
void check_output_folder(const std::string& dir, const std::vector<std::string>& inputs);

// "5GB", "500MB", "2GiB", "1000" (bytes): decimal KB/MB/GB as transformers reads them, binary
// KiB/MiB/GiB. Throws scion::Error on anything else or zero.
uint64_t parse_size(const std::string& text);

}  // namespace scion::hf
