// A run's state in a checkpoint, both ways: the files every node's tensors go to, and, when a
// run resumes, the checkpoint it continues from (read and checked once) and the way its
// tensors go back into the nodes. The files themselves: checkpoint.h.
#pragma once
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "runtime/checkpoint.h"
#include "graph/graph.h"
#include "scion/plugin.h"

namespace scion::runtime {

// Every node's tensors as checkpoint files: a model's state dict, and the parameters a
// non-model node owns, each as <node>.safetensors.
std::vector<checkpoint::TensorFile> node_files(const GraphSpec& g, const NodeResolver& nodes);

// Before a checkpoint: an update can overflow the weights even when its loss and gradient
// were finite; such a state is never saved as if it were good (NonFiniteError).
void check_parameters_finite(const GraphSpec& g, const NodeResolver& nodes, int64_t step);

class ResumeState {
 public:
  // The newest checkpoint under <out_dir>/checkpoints, checked against the graph's stages;
  // nullopt when there is none. A checkpoint written as a stage ended, whose stage the graph
  // now gives more updates, continues that stage to its new total (ended_after()); more
  // updates in a stage before it cannot be trained and are refused.
  static std::optional<ResumeState> find(const std::string& out_dir, const GraphSpec& g);

  const checkpoint::Found& found() const { return found_; }
  size_t stage_index() const { return size_t(found_.counters.stage_index); }
  int64_t stage_step() const { return found_.counters.stage_step; }
  std::string dir() const { return found_.dir.string(); }

  // Set when the checkpoint was written as its stage ended and the graph now gives that stage
  // more updates: the updates it had made (it trains on from there).
  std::optional<int64_t> ended_after() const { return ended_after_; }
  // The updates each stage begun so far made (checkpoint::Counters::stage_updates).
  const std::vector<int64_t>& stage_updates() const { return found_.counters.stage_updates; }

  // The stage the checkpoint continues takes it once, when it starts: true the first time.
  bool take() { return !std::exchange(taken_, true); }

  // The optimizer moments saved with the checkpoint, which stage `stage` continues; missing
  // ones are an error (a fresh optimizer would change the curve without a word).
  nn::NamedTensors optimizer_state(const std::string& stage) const;
  // Mid-stage the parameter names are final: moments of a parameter the stage does not train
  // mean the file came from another graph or run.
  void check_optimizer_keys(const std::vector<std::string>& keys, const std::set<std::string>& trained,
                            const std::string& stage) const;

  // Parameters owned by non-model nodes, back into the nodes' own tensors (checked first, so
  // that a mismatch changes nothing). They go first: an op may read them when the ops re-run
  // (op.cofi_prune prunes by the masks a loss.cofi node trained).
  void restore_owned_parameters(const GraphSpec& g, const NodeResolver& nodes) const;
  // The models' weights and every node's state, once the ops have given the models the shapes
  // the checkpoint was written with.
  void restore_models_and_state(const GraphSpec& g, const NodeResolver& nodes) const;

 private:
  explicit ResumeState(checkpoint::Found f) : found_(std::move(f)) {}
  void continue_grown_stage(const GraphSpec& g);
  checkpoint::Found found_;
  std::optional<int64_t> ended_after_;
  bool taken_ = false;
};

}  // namespace scion::runtime
