#include "graph/node_factory.h"

#include "scion/random.h"

namespace scion::runtime {

NodeContext NodeContext::of(const GraphSpec& g, int rank, int world) {
  NodeContext c{g.run.seed, rank, world, {}};
  for (const StageSpec& s : g.stages) c.stages.push_back(s.name);
  return c;
}

std::shared_ptr<Plugin> NoNodes::node(const std::string& name) const {
  throw Error("no node '" + name + "' outside a graph");
}

std::shared_ptr<Plugin> make_node(const PluginRegistry& reg, const NodeSpec& spec, const NodeContext& ctx,
                                  const NodeResolver& resolver) {
  Json params = spec.params;
  for (const auto& [k, target] : spec.refs) params[k] = Json(target);
  params["frozen"] = Json(spec.frozen);
  // The 64-bit seed travels exactly (as its int64 bit pattern; nodes read it back as uint64).
  params["__seed"] = Json(int64_t(derive_seed(ctx.run_seed, hash_name(spec.name))));
  params["__rank"] = Json(ctx.rank);
  params["__world"] = Json(ctx.world);
  Json::array_t stages;  // for nodes that act per stage (data.text's stage_files)
  for (const auto& s : ctx.stages) stages.push_back(Json(s));
  params["__stages"] = Json(std::move(stages));
  return reg.create(spec.plugin, Params(params, spec.name), resolver);
}

std::shared_ptr<Op> make_op(const PluginRegistry& reg, const OpSpec& spec, uint64_t seed, const NodeResolver& resolver) {
  Json params = spec.params;
  params["target"] = Json(spec.target);
  params["__seed"] = Json(int64_t(seed));
  auto op = std::dynamic_pointer_cast<Op>(reg.create(spec.plugin, Params(params, spec.plugin), resolver));
  if (!op) throw Error("'" + spec.plugin + "' is not an op plugin");
  return op;
}

}  // namespace scion::runtime
