#include "graph/node_factory.h"

#include "scion/random.h"

namespace scion::runtime {

GraphContext GraphContext::of(const GraphSpec& g, int rank, int world) {
  GraphContext c{g.run.seed, rank, world, {}};
  for (const StageSpec& s : g.stages) c.stages.push_back(s.name);
  return c;
}

std::shared_ptr<Plugin> NoNodes::node(const std::string& name) const {
  throw Error("no node '" + name + "' outside a graph");
}

std::shared_ptr<Plugin> make_node(const PluginRegistry& reg, const NodeSpec& spec, const GraphContext& graph,
                                  const NodeResolver& resolver) {
  Json params = spec.params;
  for (const auto& [k, target] : spec.refs) params[k] = Json(target);
  params["frozen"] = Json(spec.frozen);
  const NodeContext context{derive_seed(graph.run_seed, hash_name(spec.name)), graph.rank, graph.world, graph.stages};
  return reg.create(spec.plugin, Params(params, spec.name, context), resolver);
}

std::shared_ptr<Op> make_op(const PluginRegistry& reg, const OpSpec& spec, const GraphContext& graph, uint64_t seed,
                            const NodeResolver& resolver) {
  Json params = spec.params;
  params["target"] = Json(spec.target);
  const NodeContext context{seed, graph.rank, graph.world, {}};
  auto op = std::dynamic_pointer_cast<Op>(reg.create(spec.plugin, Params(params, spec.plugin, context), resolver));
  if (!op) throw Error("'" + spec.plugin + "' is not an op plugin");
  return op;
}

}  // namespace scion::runtime
