// The oneTBB flow graph of a stage's nodes: one continue_node per node the stage runs, with an
// edge per input; one pass runs the active nodes in dependency order (independent ones
// concurrently: a teacher's and a student's forward) and leaves the losses' values.
#pragma once
#include <tbb/flow_graph.h>

#include <map>
#include <memory>
#include <set>
#include <string>

#include "runtime/stage_plan.h"

namespace scion::runtime {

class StepGraph {
 public:
  StepGraph(const NodeResolver& nodes, const StagePlan& plan);
  // One pass over the nodes in `active` (the others are skipped: nothing reads them now).
  void run(const StepContext& ctx, const std::set<std::string>& active);

  // Filled by run(), one slot per node (each written by its own node only).
  std::map<std::string, Tensor> losses;
  std::map<std::string, std::map<std::string, double>> metrics;
  std::map<std::string, int64_t> seq_len;  // of each model's input

 private:
  // A node on a gradient path runs with a tape; only a trained one in training mode.
  enum class Mode { trained, pass_gradient, no_tape };
  void run_node(const NodeSpec& spec, const std::shared_ptr<Plugin>& p, Mode mode);
  TensorMap inputs_of(const NodeSpec& spec) const;
  void run_model(const NodeSpec& spec, Model& m, const TensorMap& in, Mode mode);

  tbb::flow::graph fg_;
  tbb::flow::broadcast_node<tbb::flow::continue_msg> start_;
  std::map<std::string, std::unique_ptr<tbb::flow::continue_node<tbb::flow::continue_msg>>> nodes_;
  std::map<std::string, TensorMap> outputs_;
  std::map<std::string, std::set<std::string>> wanted_;  // fixed for the stage, read concurrently
  StepContext ctx_;
  const std::set<std::string>* active_ = nullptr;
};

}  // namespace scion::runtime
