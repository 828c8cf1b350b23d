// [[stages]]: each stage's keys (a schema for the scalar ones, as [run]), the nodes it trains,
// its losses, data, optimizer, evaluation, checkpoints and ops (parameter groups:
// param_groups.cpp).
#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <sstream>

#include "graph/passes.h"

namespace scion::runtime {

namespace {

// The scalar keys of a stage, checked by Validator::check_params (type, range, the default
// written into the resolved graph).
std::vector<ParamSpec> stage_scalars(int index) {
  return {str_param("name", "stage" + std::to_string(index), "label in metrics and checkpoints"),
          int_param("log_every", 1, "metrics line every N updates").at_least(1)};
}
// The keys whose values name nodes or plugins or are tables of their own: each is checked by
// what it names, below. `steps` is read here too: its message states the whole rule.
const std::set<std::string> kStructuredKeys = {"steps", "train", "losses", "optimizer", "eval", "checkpoint",
                                               "ops", "data", "param_groups"};

// The schedule keys of a stage's optimizer table, before the plugin's own parameters.
std::vector<ParamSpec> schedule_schema() {
  return {num_param("lr", 3e-4, "peak learning rate").at_least(0),
          int_param("warmup", 0, "linear warmup steps").at_least(0),
          str_param("decay", "cosine", "learning-rate decay after warmup").one_of({"constant", "linear", "cosine"}),
          num_param("min_lr", 0.0, "learning rate at the end of the decay").at_least(0),
          num_param("clip", 1.0, "global gradient-norm clip (0 = off)").at_least(0),
          str_param("schedule", "stage",
                    "stage: warmup and decay over this stage's steps; continue: this stage goes on with the previous "
                    "stage's schedule (one warmup and decay over the steps of both, and of every stage before that "
                    "continued too)")
              .one_of({"stage", "continue"})};
}

std::string kinds_text(const std::vector<PluginKind>& kinds) {
  std::string want;
  for (size_t i = 0; i < kinds.size(); ++i)
    want += std::string(i == 0 ? "" : i + 1 == kinds.size() ? " or " : ", ") + kind_name(kinds[i]);
  return want;
}

// One [[stages]] table, checked key by key into `s`.
class StageCheck {
 public:
  StageCheck(toml::table& t, StageSpec& s, const NodeTable& nodes, std::string where, Validator& v)
      : t_(t), s_(s), nodes_(nodes), where_(std::move(where)), v_(v) {}

  void steps() {
    if (auto st = t_.get("steps"); st && st->is_integer() && st->as_integer()->get() > 0) s_.steps = st->as_integer()->get();
    else v_.error(st ? v_.pos(*st) : v_.pos(t_), where_ + " needs steps = <positive integer>");
  }

  // The nodes a key lists, each of one of `kinds` (train: models, and losses or prompts that
  // own parameters of their own).
  void node_list(const char* key, const std::vector<PluginKind>& kinds, std::vector<std::string>& out) {
    auto n = t_.get(key);
    if (!n) return;
    auto a = n->as_array();
    if (!a) {
      v_.error(v_.pos(*n), "'" + std::string(key) + "' in " + where_ + " must be an array of node names");
      return;
    }
    for (auto& e : *a) {
      auto name = e.value<std::string>();
      if (!name) {
        v_.error(v_.pos(e), "'" + std::string(key) + "' in " + where_ + " must list node names");
        continue;
      }
      auto it = nodes_.specs.find(*name);
      if (nodes_.broken.count(*name)) continue;
      if (it == nodes_.specs.end()) {
        const std::string guess = did_you_mean(*name, nodes_.names);
        v_.error(v_.pos(e), "'" + std::string(key) + "' in " + where_ + " names node '" + *name + "', which does not exist",
                 guess.empty() ? "" : "did you mean '" + guess + "'?");
      } else if (std::find(kinds.begin(), kinds.end(), it->second.info->entry.kind) == kinds.end()) {
        v_.error(v_.pos(e), "node '" + *name + "' in '" + key + "' of " + where_ + " is a " +
                                kind_name(it->second.info->entry.kind) + ", not a " + kinds_text(kinds));
      } else {
        out.push_back(*name);
      }
    }
  }

  void train_and_data() {
    node_list("train", {PluginKind::model, PluginKind::loss, PluginKind::prompt}, s_.train);
    node_list("data", {PluginKind::data}, s_.data);
    for (const auto& m : s_.train)
      if (nodes_.specs.at(m).frozen)
        v_.error(v_.pos(*t_.get("train")), "node '" + m + "' is frozen and cannot be trained in " + where_);
  }

  // An array of loss nodes (weight 1 each) or a table loss = weight.
  void losses() {
    if (auto l = t_.get("losses")) {
      if (l->is_array()) {
        std::vector<std::string> names;
        node_list("losses", {PluginKind::loss}, names);
        for (auto& n : names) s_.losses.push_back({n, 1.0});
      } else if (auto lt = l->as_table()) {
        for (auto&& [k, w] : *lt) {
          const std::string n(k.str());
          auto it = nodes_.specs.find(n);
          const std::string guess = did_you_mean(n, nodes_.names);
          if (it == nodes_.specs.end() || it->second.info->entry.kind != PluginKind::loss)
            v_.error(v_.pos(k), "'" + n + "' in the losses of " + where_ + " is not a loss node",
                     guess.empty() ? "" : "did you mean '" + guess + "'?");
          else if (!w.is_number())
            v_.error(v_.pos(w), "the weight of loss '" + n + "' must be a number");
          else if (const double weight = w.value<double>().value_or(1.0); !std::isfinite(weight)) {
            std::ostringstream got;
            got << weight;
            v_.error(v_.pos(w), "the weight of loss '" + n + "' in " + where_ + " must be a finite number, got " + got.str(),
                     n + " = 1.0 (a finite weight of the loss in the stage's sum)");
            s_.losses.push_back({n, 1.0});  // still a loss of the stage: refused for its weight alone
          } else
            s_.losses.push_back({n, w.value<double>().value_or(1.0)});
        }
      } else {
        v_.error(v_.pos(*l), "'losses' in " + where_ + " must be an array of loss nodes or a table loss = weight");
      }
    }
    if (s_.losses.empty() && !s_.train.empty()) v_.error(v_.pos(t_), where_ + " trains models but has no losses");
  }

  // What the stage's losses need each step (through inputs): every trained model must be
  // among it, and its data nodes must be ones the stage's data list allows.
  void losses_reach() {
    std::set<std::string> upstream;
    std::function<void(const std::string&)> up = [&](const std::string& n) {
      auto it = nodes_.specs.find(n);
      if (it == nodes_.specs.end() || !upstream.insert(n).second) return;
      for (const auto& [port, src] : it->second.inputs) up(src.node);
    };
    for (const auto& [l, w] : s_.losses) up(l);
    if (!s_.losses.empty())
      for (const auto& m : s_.train)
        if (!upstream.count(m))
          v_.error(v_.pos(*t_.get("train")), "node '" + m + "' is trained in " + where_ + " but none of its losses depends on it",
                   "connect a loss of the stage to the model's outputs, or take it out of train");
    if (!s_.data.empty())
      for (const auto& n : upstream)
        if (nodes_.specs.at(n).info->entry.kind == PluginKind::data &&
            std::find(s_.data.begin(), s_.data.end(), n) == s_.data.end())
          v_.error(v_.pos(*t_.get("data")), "the losses of " + where_ + " read data node '" + n + "', which is not in its data list",
                   "add '" + n + "' to data, or connect the losses to a listed data node");
  }

  // A stage that trains without an optimizer table gets AdamW with its defaults, written into
  // the resolved graph like every other default.
  void optimizer() {
    if (!t_.get("optimizer") && t_.get("train")) t_.insert("optimizer", toml::table{});
    auto o = t_.get("optimizer");
    if (!o) {
      s_.optimizer_info = v_.registry().find(s_.optimizer);
      s_.optimizer_params = Json(Json::object_t{});
      if (!s_.train.empty() && !s_.optimizer_info)
        v_.error(v_.pos(t_), where_ + " trains models but plugin 'optim.adamw' was not found");
      return;
    }
    auto ot = o->as_table();
    if (!ot) {
      v_.error(v_.pos(*o), "'optimizer' in " + where_ + " must be a table { plugin = ..., lr = ... }");
      return;
    }
    s_.optimizer = v_.string(*ot, "plugin", "optim.adamw", "the optimizer of " + where_);
    s_.optimizer_info = v_.registry().find(s_.optimizer);
    if (!s_.optimizer_info || s_.optimizer_info->entry.kind != PluginKind::optimizer) {
      const std::string guess = did_you_mean(s_.optimizer, v_.registry().names());
      v_.error(v_.pos(*o), where_ + ": '" + s_.optimizer + "' is not an optimizer plugin",
               guess.empty() ? "" : "did you mean '" + guess + "'?");
      return;
    }
    std::vector<ParamSpec> all = schedule_schema();
    for (const auto& p : s_.optimizer_info->entry.params) all.push_back(p);
    Json params = v_.check_params(*ot, all, "the optimizer of " + where_, {"plugin"}, v_.pos(*o));
    auto get = [&](const char* key) { return params.contains(key) ? &params.at(key) : nullptr; };
    if (auto x = get("lr"); x && x->is_number()) s_.lr = json_number(*x);
    if (auto x = get("warmup"); x && x->is_number()) s_.warmup = json_int(*x);
    if (auto x = get("decay"); x && x->is_string()) s_.decay = json_string(*x);
    if (auto x = get("min_lr"); x && x->is_number()) s_.min_lr = json_number(*x);
    if (auto x = get("clip"); x && x->is_number()) s_.clip = json_number(*x);
    if (auto x = get("schedule"); x && x->is_string()) s_.continue_schedule = json_string(*x) == "continue";
    s_.optimizer_params = params;
  }

  // eval = { every = N, evaluators = [...] }
  void eval() {
    auto e = t_.get("eval");
    if (!e) return;
    auto et = e->as_table();
    if (!et) {
      v_.error(v_.pos(*e), "'eval' in " + where_ + " must be a table { every = N, evaluators = [...] }");
      return;
    }
    const Json p = v_.check_params(*et, {every_param("evaluate every N updates (and at the stage's end)")},
                                   "eval of " + where_, {"evaluators"}, v_.pos(*e));
    s_.eval_every = every_of(p);
    if (auto ev = et->get("evaluators"); ev && !ev->is_array())
      v_.error(v_.pos(*ev), "'evaluators' in eval of " + where_ + " must be an array of evaluator nodes");
    if (auto a = (*et)["evaluators"].as_array()) {
      for (auto& x : *a) {
        auto name = x.value<std::string>();
        auto it = name ? nodes_.specs.find(*name) : nodes_.specs.end();
        if (it == nodes_.specs.end() || it->second.info->entry.kind != PluginKind::evaluator)
          v_.error(v_.pos(x), "'" + name.value_or("?") + "' in the evaluators of " + where_ + " is not an evaluator node");
        else
          s_.evaluators.push_back(*name);
      }
    }
  }

  // checkpoint = { every = N }
  void checkpoint() {
    auto c = t_.get("checkpoint");
    if (!c) return;
    auto ct = c->as_table();
    if (!ct) {
      v_.error(v_.pos(*c), "'checkpoint' in " + where_ + " must be a table { every = N }");
      return;
    }
    const Json p = v_.check_params(*ct, {every_param("write a checkpoint every N updates (and at the stage's end)")},
                                   "checkpoint of " + where_, {}, v_.pos(*c));
    s_.checkpoint_every = every_of(p);
  }

  // ops = [{ plugin = "grow....", target = "<model node>", ... }], applied when the stage starts.
  void ops() {
    auto o = t_.get("ops");
    if (!o) return;
    auto a = o->as_array();
    if (!a) {
      v_.error(v_.pos(*o), "'ops' in " + where_ + " must be an array of tables");
      return;
    }
    for (auto& e : *a) {
      auto ot = e.as_table();
      if (!ot) v_.error(v_.pos(e), "each op in " + where_ + " must be a table { plugin = ..., target = ... }");
      else if (auto op = check_op(*ot)) s_.ops.push_back(std::move(*op));
    }
  }

 private:
  static ParamSpec every_param(const char* doc) { return int_param("every", 0, doc).at_least(0); }
  static int64_t every_of(const Json& p) {
    return p.contains("every") && p.at("every").is_number_integer() ? json_int(p.at("every")) : 0;
  }

  std::optional<OpSpec> check_op(toml::table& ot) {
    bool typed = true;
    for (const char* key : {"plugin", "target"})
      if (auto kn = ot.get(key); kn && !kn->is_string()) {
        v_.error(v_.pos(*kn), "'" + std::string(key) + "' of an op in " + where_ + " must be a string, got " +
                                  Validator::toml_type(*kn),
                 std::string(key) == "plugin" ? "plugin = \"<op plugin>\"; `scion plugins` lists them"
                                              : "target = \"<model node>\"");
        typed = false;
      }
    if (!typed) return std::nullopt;
    OpSpec op;
    op.plugin = ot["plugin"].value_or<std::string>("");
    op.target = ot["target"].value_or<std::string>("");
    op.info = v_.registry().find(op.plugin);
    if (!op.info || op.info->entry.kind != PluginKind::op) {
      const std::string guess = did_you_mean(op.plugin, v_.registry().names());
      v_.error(v_.pos(ot), "'" + op.plugin + "' in the ops of " + where_ + " is not an op plugin",
               guess.empty() ? "" : "did you mean '" + guess + "'?");
      return std::nullopt;
    }
    auto tg = nodes_.specs.find(op.target);
    if (tg == nodes_.specs.end() || tg->second.info->entry.kind != PluginKind::model) {
      v_.error(v_.pos(ot), "op '" + op.plugin + "' in " + where_ + " needs target = \"<model node>\"");
      return std::nullopt;
    }
    op.params = v_.check_params(ot, op.info->entry.params, "op '" + op.plugin + "' of " + where_, {"plugin", "target"},
                                v_.pos(ot));
    return op;
  }

  toml::table& t_;
  StageSpec& s_;
  const NodeTable& nodes_;
  const std::string where_;
  Validator& v_;
};

StageSpec check_stage(toml::table& t, int index, const NodeTable& nodes, Validator& v) {
  const std::string where = "stage " + std::to_string(index);
  StageSpec s;
  s.pos = v.pos(t);
  const Json p = v.check_params(t, stage_scalars(index), where, kStructuredKeys, s.pos);
  if (p.contains("name") && p.at("name").is_string()) s.name = json_string(p.at("name"));
  if (p.contains("log_every") && p.at("log_every").is_number_integer()) s.log_every = json_int(p.at("log_every"));
  StageCheck c(t, s, nodes, where, v);
  c.steps();
  c.train_and_data();
  c.losses();
  c.losses_reach();
  c.optimizer();
  c.eval();
  c.checkpoint();
  c.ops();
  check_param_groups(t, s, nodes, where, v);
  return s;
}

}  // namespace

std::vector<StageSpec> check_stages(toml::table& root, const NodeTable& nodes, Validator& v) {
  std::vector<StageSpec> stages;
  auto a = root["stages"].as_array();
  if (!a || a->empty()) {
    v.error({v.file(), 1, 1}, "the graph has no [[stages]]", "add [[stages]] with steps, train, losses and optimizer");
    return stages;
  }
  for (size_t i = 0; i < a->size(); ++i) {
    toml::node& e = *a->get(i);
    if (auto t = e.as_table()) stages.push_back(check_stage(*t, int(i), nodes, v));
    else v.error(v.pos(e), "stage " + std::to_string(i) + " must be a table");
  }
  // Stages joined by schedule = "continue" share one schedule: each reads it at its offset
  // into the chain, over the chain's total steps.
  for (size_t i = 0; i < stages.size(); ++i) {
    StageSpec& s = stages[i];
    if (s.continue_schedule && i == 0 && a->get(0)->as_table())
      v.error(v.pos(*a->get(0)->as_table()), "stage 0 has schedule = \"continue\" but no stage before it",
              "remove schedule = \"continue\" from the first stage");
    s.schedule_offset = s.continue_schedule && i > 0 ? stages[i - 1].schedule_offset + stages[i - 1].steps : 0;
  }
  for (size_t end = stages.size(); end-- > 0;) {
    size_t begin = end;
    while (begin > 0 && stages[begin].continue_schedule) --begin;
    int64_t total = 0;
    for (size_t i = begin; i <= end; ++i) total += stages[i].steps;
    for (size_t i = begin; i <= end; ++i) stages[i].schedule_steps = total;
    end = begin;
    if (end == 0) break;
  }
  return stages;
}

}  // namespace scion::runtime
