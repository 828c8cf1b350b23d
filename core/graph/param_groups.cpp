// A stage's param_groups (graph.h: ParamGroupSpec).
#include <algorithm>

#include "graph/passes.h"

namespace scion::runtime {

// param_groups = [{ nodes = [...], match = "glob", plugin = "...", lr = ..., sign = -1,
// clip = false, lr_schedule = false, <the optimizer's own keys> }]: each group's keys are checked against its optimizer's schema;
// keys it does not give take the stage's values when it uses the stage's optimizer (the
// plugin's defaults otherwise). Whether a pattern selects any parameter can only be known
// once the nodes exist: the executor refuses a group that selects nothing before the first
// update.
void check_param_groups(toml::table& t, StageSpec& s, const NodeTable& nodes, const std::string& where,
                        Validator& v) {
  const PluginRegistry& reg = v.registry();
  toml::node* pg = t.get("param_groups");
  if (!pg) return;
  auto a = pg->as_array();
  if (!a) {
    v.error(v.pos(*pg), "'param_groups' in " + where + " must be an array of tables",
            "param_groups = [{ nodes = [\"model\"], match = \"*.bias\", weight_decay = 0.0 }]");
    return;
  }
  if (s.train.empty()) {
    v.error(v.pos(*pg), where + " has param_groups but trains nothing", "list the trained nodes in train");
    return;
  }
  for (auto& gv : *a) {
    auto gt = gv.as_table();
    const std::string gwhere = "a parameter group of " + where;
    if (!gt) {
      v.error(v.pos(gv), "each entry of param_groups in " + where + " must be a table { nodes = [...], match = ... }");
      continue;
    }
    ParamGroupSpec g;
    g.pos = v.pos(gv);
    if (auto n = gt->get("nodes")) {
      auto na = n->as_array();
      if (!na) v.error(v.pos(*n), "'nodes' in " + gwhere + " must be an array of node names");
      for (size_t i = 0; na && i < na->size(); ++i) {
        auto name = na->get(i)->value<std::string>();
        const SourcePos at = v.pos(*na->get(i));
        if (!name) {
          v.error(at, "'nodes' in " + gwhere + " must list node names");
        } else if (std::find(s.train.begin(), s.train.end(), *name) != s.train.end()) {
          g.nodes.push_back(*name);
        } else if (nodes.specs.count(*name)) {
          v.error(at, "node '" + *name + "' in " + gwhere + " is not trained in it",
                  "a group selects parameters of trained nodes: add '" + *name + "' to train");
        } else {
          const std::string guess = did_you_mean(*name, nodes.names);
          v.error(at, "node '" + *name + "' in " + gwhere + " does not exist",
                  guess.empty() ? "trained here: " + Validator::join(s.train) : "did you mean '" + guess + "'?");
        }
      }
    }
    g.match = v.string(*gt, "match", "*", gwhere);
    if (g.match.empty()) v.error(v.pos(*gt->get("match")), "'match' in " + gwhere + " is empty", "\"*\" selects every parameter");
    g.optimizer = v.string(*gt, "plugin", s.optimizer, gwhere);
    g.optimizer_info = reg.find(g.optimizer);
    if (!g.optimizer_info || g.optimizer_info->entry.kind != PluginKind::optimizer) {
      const std::string guess = did_you_mean(g.optimizer, reg.names());
      v.error(gt->get("plugin") ? v.pos(*gt->get("plugin")) : g.pos, gwhere + ": '" + g.optimizer + "' is not an optimizer plugin",
              guess.empty() ? "" : "did you mean '" + guess + "'?");
      continue;
    }
    if (auto sg = gt->get("sign")) {
      if (!sg->is_integer() || (sg->as_integer()->get() != 1 && sg->as_integer()->get() != -1))
        v.error(v.pos(*sg), "'sign' in " + gwhere + " must be 1 or -1", "-1 steps up the gradient (ascent, for Lagrange multipliers)");
      else
        g.sign = int(sg->as_integer()->get());
    }
    // Whether the stage's clipping and learning-rate schedule apply to the group (CoFi's masks
    // and multipliers: neither, as its reference steps them by separate optimizers).
    for (const char* key : {"clip", "lr_schedule"})
      if (auto b = gt->get(key)) {
        if (!b->is_boolean())
          v.error(v.pos(*b), std::string("'") + key + "' in " + gwhere + " must be true or false",
                  std::string(key) + " = false keeps the group out of the stage's " +
                      (std::string(key) == "clip" ? "gradient clipping" : "warmup and decay"));
        else
          (std::string(key) == "clip" ? g.clip : g.lr_schedule) = b->as_boolean()->get();
      }
    // The group's own optimizer keys; with the stage's optimizer, the stage's values are the
    // defaults (a group changes what it names and nothing else).
    const bool same = g.optimizer == s.optimizer;
    std::vector<ParamSpec> schema = {{"lr", ParamType::number, Json(s.lr), false, "peak learning rate of the group"}};
    for (ParamSpec p : g.optimizer_info->entry.params) {
      if (same && s.optimizer_params.is_object() && s.optimizer_params.contains(p.name))
        p.default_value = s.optimizer_params.at(p.name);
      schema.push_back(p);
    }
    Json params = v.check_params(*gt, schema, gwhere, {"nodes", "match", "plugin", "sign", "clip", "lr_schedule"}, g.pos);
    if (params.contains("lr") && params.at("lr").is_number()) {
      g.lr = json_number(params.at("lr"));
      if (g.lr < 0) v.error(v.pos(*gt->get("lr")), "'lr' in " + gwhere + " must be at least 0");
    }
    g.optimizer_params = params;
    s.param_groups.push_back(std::move(g));
  }
}

}  // namespace scion::runtime
