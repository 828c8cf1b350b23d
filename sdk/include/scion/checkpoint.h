// Names in Scion's checkpoints, written by the executor and read by the CLI, model plugins and
// tools: one definition here instead of string literals repeated in each reader. Plain char
// arrays: they convert to std::string for JSON keys, map lookups and paths.
//
//   runs/<name>/checkpoints/latest.json            {"checkpoint": "step_<N>", "step": N}
//   runs/<name>/checkpoints/step_<N>/state.json    counters and each node's extra state
//   runs/<name>/checkpoints/step_<N>/<node>.safetensors  a model's weights; its __metadata__
//                                                        holds the plugin and config below
#pragma once

namespace scion::checkpoint {

// safetensors __metadata__ of a model's weights
inline constexpr char kPluginKey[] = "scion.plugin";  // the model plugin ("model.gpt")
inline constexpr char kConfigKey[] = "scion.config";  // the model's config() as JSON

// files of a checkpoint folder
inline constexpr char kLatestFile[] = "latest.json";
inline constexpr char kStateFile[] = "state.json";
inline constexpr char kOptimizerFile[] = "optimizer.safetensors";

// latest.json
inline constexpr char kLatestCheckpoint[] = "checkpoint";  // the folder name, "step_<N>"
inline constexpr char kLatestStep[] = "step";

// state.json
inline constexpr char kStep[] = "step";                // optimizer updates so far
inline constexpr char kStageIndex[] = "stage_index";  // the stage being run
inline constexpr char kStageStep[] = "stage_step";    // updates done in that stage
inline constexpr char kStageUpdates[] = "stage_updates";  // updates each stage begun so far made
inline constexpr char kTokens[] = "tokens";            // training tokens so far
inline constexpr char kFlops[] = "flops";              // training FLOPs so far
inline constexpr char kElapsed[] = "elapsed_s";        // wall time so far
inline constexpr char kNodes[] = "nodes";              // node name -> Plugin::state()
inline constexpr char kFiles[] = "files";              // file name -> {"bytes": N, "crc32": X}: what it holds

}  // namespace scion::checkpoint
