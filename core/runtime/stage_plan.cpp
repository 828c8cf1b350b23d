#include "runtime/stage_plan.h"

#include <algorithm>
#include <functional>

namespace scion::runtime {

std::string source_prefix(const SourcePos& p) {
  return p.file + ":" + std::to_string(p.line) + ":" + std::to_string(p.column) + ": ";
}

nn::NamedTensors parameters_of(const NodeResolver& nodes, const std::string& name) {
  auto p = nodes.node(name);
  if (auto m = std::dynamic_pointer_cast<Model>(p)) return m->module().named_parameters();
  return p->owned_parameters();
}

StagePlan plan_stage(const GraphSpec& g, size_t si, const NodeResolver& nodes) {
  StagePlan plan;
  plan.index = si;
  plan.spec = &g.stages[si];
  const StageSpec& s = *plan.spec;
  std::set<std::string> needed;
  std::function<void(const std::string&)> need = [&](const std::string& n) {
    if (!needed.insert(n).second) return;
    for (const auto& [port, src] : g.node(n)->inputs) need(src.node);
  };
  for (const auto& [l, w] : s.losses) need(l);
  for (const NodeSpec& n : g.nodes)
    if (needed.count(n.name)) plan.run_nodes.push_back(&n);
  plan.trained = {s.train.begin(), s.train.end()};
  for (const NodeSpec* n : plan.run_nodes) {
    if (n->info->entry.kind == PluginKind::model) plan.models.push_back(n->name);
    if (n->info->entry.kind != PluginKind::data) continue;
    if (!s.data.empty() && std::find(s.data.begin(), s.data.end(), n->name) == s.data.end())
      throw Error("stage '" + s.name + "': loss inputs come from data node '" + n->name +
                  "', which is not in the stage's data list");
    plan.tokens_per_step += std::dynamic_pointer_cast<DataSource>(nodes.node(n->name))->tokens_per_batch();
  }
  return plan;
}

void plan_parameters(StagePlan& plan, const OptimizerSet& groups, const NodeResolver& nodes) {
  const StageSpec& s = *plan.spec;
  plan.params.clear();
  std::vector<size_t> count(groups.groups.size(), 0);
  for (const auto& n : s.train) {
    const nn::NamedTensors own = parameters_of(nodes, n);
    if (own.empty())
      throw Error(source_prefix(s.pos) + "stage '" + s.name + "' trains node '" + n +
                  "', which has no trainable parameters " +
                  "(hint: a node other than a model is trainable when its plugin owns parameters)");
    for (const auto& [k, t] : own) {
      StagePlan::Param p{n + "." + k, t, 0};
      p.group = groups.group_of(p.name);
      ++count[p.group];
      plan.params.push_back(std::move(p));
    }
  }
  for (size_t i = 0; i < s.param_groups.size(); ++i) {
    if (count[i] > 0) continue;
    const ParamGroupSpec& g = s.param_groups[i];
    std::string names;
    for (const auto& n : g.nodes.empty() ? s.train : g.nodes) names += (names.empty() ? "" : ", ") + n;
    throw Error(source_prefix(g.pos) + "parameter group " + std::to_string(i) + " of stage '" + s.name +
                "' selects no parameter: none of " + names + " has a parameter matching '" + g.match +
                "' that an earlier group did not take (hint: patterns match the name within the node, e.g. "
                "\"h.*.attn.*\" or \"*.bias\"; `scion inspect` lists a checkpoint's names)");
  }
}

}  // namespace scion::runtime
