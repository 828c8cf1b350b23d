// Checkpoint files of a run, and nothing else: the executor decides what goes in (which
// models, which node state, which optimizer moments); this file decides how it lands on disk
// so that a SIGKILL at any moment leaves a checkpoint that resumes bit-identically.
//
//   runs/<name>/checkpoints/step_<N>/{<node>.safetensors..., optimizer.safetensors, state.json}
//   runs/<name>/checkpoints/latest.json  {"checkpoint": "step_<N>", "step": N}
//
// A checkpoint is written into step_<N>.tmp and renamed; latest.json is written atomically
// after the rename, so it only ever names a complete folder.
#pragma once
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "scion/json.h"
#include "scion/nn.h"
#include "scion/safetensors.h"

namespace scion::runtime::checkpoint {

// Where the run stands: enough to continue the loop where it stopped.
struct Counters {
  int64_t step = 0;         // optimizer updates in the whole run
  int64_t stage_index = 0;  // the stage to continue (the next one when a stage just ended)
  int64_t stage_step = 0;   // updates done in that stage
  double tokens = 0, flops = 0, elapsed_s = 0;
  // The updates each stage begun so far made, in order (a stage that ended: all of its steps as
  // the graph then gave them). Empty in a checkpoint written before they were recorded.
  std::vector<int64_t> stage_updates;
};

// One safetensors file of a checkpoint ("<node>.safetensors", "optimizer.safetensors").
struct TensorFile {
  std::string file;
  nn::NamedTensors tensors;
  safetensors::Metadata metadata;
};

struct Contents {
  Counters counters;
  Json nodes;  // node name -> Plugin::state() (non-null ones only)
  std::vector<TensorFile> files;
};

// Writes step_<counters.step> under `root` (rank 0 only: the caller decides), points
// latest.json at it, and keeps it and the newest one before it; the other checkpoint folders
// go (older ones, leftovers of a killed write, and a later-numbered one that a kill left
// unnamed by latest.json: an abandoned timeline). `root` is a folder Scion owns
// (scion/owned.h), and only folders Scion can prove it wrote are deleted: named step_<N> or
// step_<N>.tmp and holding only a checkpoint's files. Anything else in it is left alone, with a
// warning.
void write(const std::filesystem::path& root, const Contents& c);

// The newest complete checkpoint under `root`, read once: its folder, counters and node
// state, every file its manifest lists verified (size and CRC-32); a missing or corrupted
// file, nonsense counters or a latest.json naming no folder are errors naming the file.
// Without latest.json, the newest complete step_<N> folder (with a warning); nullopt when
// there is no checkpoint at all.
struct Found {
  std::filesystem::path dir;
  Counters counters;
  Json nodes;  // an object; may lack any node
  bool manifest = false;            // state.json lists its files (every checkpoint written since session 5)
  std::vector<std::string> files;   // ... and these are they, each verified (size, CRC-32) when read
  bool has(const std::string& file) const;
  safetensors::Loaded load(const std::string& file) const;  // throws naming the file when missing
};
std::optional<Found> read_latest(const std::filesystem::path& root);

}  // namespace scion::runtime::checkpoint
