// What a stage trains and runs, computed once when it starts: the nodes its losses need (in
// dependency order), the models among them, the tokens of a step, and, once the stage's ops
// have shaped the models, every trained parameter with its parameter group.
#pragma once
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "runtime/optimizer_set.h"
#include "scion/plugin.h"

namespace scion::runtime {

class GradBuckets;
class ZeroShards;

struct StagePlan {
  size_t index = 0;
  const StageSpec* spec = nullptr;
  std::vector<const NodeSpec*> run_nodes;  // its losses and everything upstream, in dependency order
  std::set<std::string> trained;           // the nodes listed in train
  std::vector<std::string> models;         // the model nodes among run_nodes
  int64_t tokens_per_step = 0;             // on this rank
  // The trained parameters, after the stage's ops, each with its group in the optimizer set.
  struct Param {
    std::string name;  // "<node>.<param>"
    Tensor tensor;
    size_t group = 0;
  };
  std::vector<Param> params;
  std::shared_ptr<GradBuckets> buckets;  // with several ranks: the gradient buckets of `params`
  std::shared_ptr<ZeroShards> zero;      // [run] zero = 1 with several ranks: who owns which parameter
  std::map<const TensorImpl*, size_t> param_index;  // params: position, by tensor
};

// The nodes are made (`nodes` finds them); the stage's data list is checked against what its
// losses read.
StagePlan plan_stage(const GraphSpec& g, size_t stage_index, const NodeResolver& nodes);

// Which parameters the stage trains and in which group each is. Runs once the stage's ops
// have shaped the models; a group that selects nothing, or a trained node that owns no
// parameters, is an error here, before the stage's first update.
void plan_parameters(StagePlan& plan, const OptimizerSet& groups, const NodeResolver& nodes);

// A model's parameters, or the parameters another node owns (a prompt, a gate's log alpha).
nn::NamedTensors parameters_of(const NodeResolver& nodes, const std::string& node);

// "file:line:column: " of a place in the graph, for errors found while running.
std::string source_prefix(const SourcePos& p);

}  // namespace scion::runtime
