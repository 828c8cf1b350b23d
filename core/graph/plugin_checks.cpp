// The plugins' own checks (PluginEntry::check) on the whole graph, as GraphView shows it.
#include <map>
#include <memory>

#include "graph/node_factory.h"
#include "graph/passes.h"
#include "graph/source.h"
#include "scion/random.h"

namespace scion::runtime {

namespace {

GraphView graph_view(const NodeTable& nodes, const std::vector<std::string>& order, const GraphSpec& g,
                     const PluginRegistry& reg) {
  GraphView view;
  for (const auto& name : order) {
    const NodeSpec& n = nodes.specs.at(name);
    Json params = n.params;
    for (const auto& [k, target] : n.refs) params[k] = Json(target);
    std::map<std::string, std::string> inputs;
    for (const auto& [port, src] : n.inputs) inputs[port] = src.str();
    // The node's own seed, as the run derives it (rank 0 of 1): what a check of data order compares.
    const NodeContext context{derive_seed(g.run.seed, hash_name(n.name)), 0, 1, {}};
    view.nodes.push_back({n.name, n.plugin, n.info->entry.kind, Params(params, n.name, context), std::move(inputs)});
  }
  for (const StageSpec& s : g.stages) {
    GraphStageView sv{s.name, s.steps, s.eval_every, s.train, {}, s.evaluators, s.data, {}};
    for (const auto& [l, w] : s.losses) sv.losses.push_back(l);
    for (const OpSpec& op : s.ops) sv.ops.emplace_back(op.plugin, op.target);
    view.stages.push_back(std::move(sv));
  }
  // A tokenizer node's tokenizer, made by the node factory as the run will make it; once per
  // validation (several checks ask for the same one).
  auto made = std::make_shared<std::map<std::string, std::shared_ptr<Tokenizer>>>();
  view.tokenizer = [&nodes, &g, &reg, made](const std::string& name) -> std::shared_ptr<Tokenizer> {
    auto it = nodes.specs.find(name);
    if (it == nodes.specs.end() || it->second.info->entry.kind != PluginKind::tokenizer) return nullptr;
    if (auto m = made->find(name); m != made->end()) return m->second;
    const NoNodes none;
    auto tok = std::dynamic_pointer_cast<Tokenizer>(make_node(reg, it->second, GraphContext::of(g), none));
    return made->emplace(name, std::move(tok)).first->second;
  };
  return view;
}

}  // namespace

void run_plugin_checks(const toml::table& root, const NodeTable& nodes, const std::vector<std::string>& order,
                       const GraphSpec& g, Validator& v) {
  const GraphView view = graph_view(nodes, order, g, v.registry());
  const toml::array* stages = root["stages"].as_array();
  // The place of a problem: the value at its dotted path inside `base` ("stage_files.teacher",
  // "data.1"), or the deepest part that exists, so that a problem with a default points at its
  // table. A table made by a [header] has no position of its own in toml++ (the node's key
  // has); a value a --set override gave is located at the override (line 0, another "file").
  auto locate = [&](const toml::node* base, const std::string& path, const SourcePos& fallback) {
    const toml::node* at = deepest_at(base, path);
    const SourcePos p = at ? v.pos(*at) : fallback;
    return p.line > 0 || p.file != v.file() ? p : fallback;
  };
  auto run_check = [&](const PluginEntry& entry, const GraphNodeView& self) {
    std::vector<GraphProblem> problems;
    try {
      problems = entry.check(view, self);
    } catch (const std::exception& e) {
      problems.push_back({"", std::string("the plugin's graph check failed: ") + e.what(), "a bug of the plugin"});
    }
    return problems;
  };
  auto report = [&](const GraphProblem& p, const SourcePos& at, const std::string& who) {
    if (p.note) v.note(at, who + ": " + p.message, p.hint);
    else v.error(at, who + ": " + p.message, p.hint);
  };
  for (const GraphNodeView& self : view.nodes) {
    const NodeSpec& n = nodes.specs.at(self.name);
    if (!n.info->entry.check) continue;
    for (const GraphProblem& p : run_check(n.info->entry, self)) {
      SourcePos at = n.pos;
      if (p.stage >= 0 && stages && size_t(p.stage) < stages->size())
        at = locate(stages->get(size_t(p.stage)), p.at, v.pos(*stages->get(size_t(p.stage))));
      else if (!p.at.empty())
        at = locate(nodes.table->get(n.name), p.at, n.pos);
      report(p, at, "node '" + n.name + "' (" + n.plugin + ")");
    }
  }
  // Each use of an op in a stage, as a node named "<stage>.ops.<i>" whose input is its target;
  // its problems are located inside the op's table.
  for (size_t si = 0; si < g.stages.size(); ++si) {
    const StageSpec& s = g.stages[si];
    for (size_t oi = 0; oi < s.ops.size(); ++oi) {
      const OpSpec& op = s.ops[oi];
      if (!op.info->entry.check) continue;
      Json params = op.params;
      params["target"] = Json(op.target);  // also among its parameters
      const GraphNodeView self{s.name + ".ops." + std::to_string(oi), op.plugin, PluginKind::op,
                               Params(params, op.plugin), {{"target", op.target}}};
      const toml::node* stage = stages ? stages->get(si) : nullptr;
      for (const GraphProblem& p : run_check(op.info->entry, self)) {
        const std::string path = "ops." + std::to_string(oi) + (p.at.empty() ? "" : "." + p.at);
        const SourcePos at = stage ? locate(stage, path, v.pos(*stage)) : s.pos;
        report(p, at, "op '" + op.plugin + "' of stage " + std::to_string(si));
      }
    }
  }
}

}  // namespace scion::runtime
