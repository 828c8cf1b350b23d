// The one place a node or an op is made from its validated spec: the executor (a run's
// nodes, a stage's ops), validation (a tokenizer node whose vocabulary a check needs,
// GraphView::tokenizer) and the CLI (a tokenizer of `scion tokenize`/`generate`, a model
// from a checkpoint) all make them here, with the same parameters and context.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "graph/graph.h"

namespace scion::runtime {

// What every node of a graph is made with: the run's seed (each node derives its own from it
// and its name: NodeContext::seed), this process's rank among `world`, the stage names.
struct GraphContext {
  uint64_t run_seed = 0;
  int rank = 0, world = 1;
  std::vector<std::string> stages;
  static GraphContext of(const GraphSpec& g, int rank = 0, int world = 1);
};

// A resolver for nodes made alone (validation, the CLI): it knows no other node.
struct NoNodes : NodeResolver {
  std::shared_ptr<Plugin> node(const std::string& name) const override;
};

// The node `spec` describes. Errors are the plugin's own, unchanged (callers add the place).
std::shared_ptr<Plugin> make_node(const PluginRegistry& reg, const NodeSpec& spec, const GraphContext& graph,
                                  const NodeResolver& resolver);
// An op of a stage, drawing the random stream `seed`.
std::shared_ptr<Op> make_op(const PluginRegistry& reg, const OpSpec& spec, const GraphContext& graph, uint64_t seed,
                            const NodeResolver& resolver);

}  // namespace scion::runtime
