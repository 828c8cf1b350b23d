#include "runtime/graph.h"

#include "runtime/port_type.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <set>
#include <sstream>
#include <toml++/toml.h>

#include "runtime/paths.h"
#include "scion/device.h"
#include "scion/files.h"

namespace scion::runtime {

namespace {
// A name that becomes one file or folder name inside the run root: non-empty, at most 100
// characters of [A-Za-z0-9_-] (and '.' where `dots`), not starting with '.'.
bool file_name_ok(const std::string& n, bool dots) {
  if (n.empty() || n.size() > 100 || n[0] == '.') return false;
  for (char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || (dots && c == '.'))) return false;
  return true;
}

std::string format(const std::vector<Diagnostic>& d) {
  std::ostringstream os;
  os << d.size() << " problem" << (d.size() == 1 ? "" : "s") << " in the graph:";
  for (const auto& x : d) {
    // Line 0: no place inside a file (a --set override, a file that cannot be read).
    if (x.pos.line > 0) os << "\n" << x.pos.file << ":" << x.pos.line << ":" << x.pos.column << ": error: " << x.message;
    else os << "\n" << x.pos.file << ": error: " << x.message;
    if (!x.hint.empty()) os << "\n    hint: " << x.hint;
  }
  return os.str();
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

Json to_json(const toml::node& n) {
  if (auto v = n.as_integer()) return Json(int64_t(v->get()));
  if (auto v = n.as_floating_point()) return Json(v->get());
  if (auto v = n.as_boolean()) return Json(v->get());
  if (auto v = n.as_string()) return Json(v->get());
  if (auto a = n.as_array()) {
    Json::array_t out;
    for (const auto& e : *a) out.push_back(to_json(e));
    return Json(std::move(out));
  }
  if (auto t = n.as_table()) {
    Json::object_t o;
    for (const auto& [k, v] : *t) o[std::string(k.str())] = to_json(v);
    return Json(std::move(o));
  }
  return Json(n.is_date_time() || n.is_date() || n.is_time() ? Json("<date>") : Json());
}

// A JSON value as TOML, for defaults written into the resolved graph. Whole numbers are
// written as integers (JSON keeps one number type); arrays and tables nest to any depth.
// `put` receives the converted value of its concrete TOML type (null: nothing is written).
template <class Put>
void with_toml(const Json& v, Put&& put);

toml::array toml_array(const Json& v) {
  toml::array a;
  for (const Json& e : json_array(v)) with_toml(e, [&](auto&& x) { a.push_back(std::move(x)); });
  return a;
}
toml::table toml_table(const Json& v) {
  toml::table t;
  for (const auto& [k, e] : json_object(v)) with_toml(e, [&](auto&& x) { t.insert_or_assign(k, std::move(x)); });
  return t;
}
template <class Put>
void with_toml(const Json& v, Put&& put) {
  if (v.is_boolean()) put(bool(json_bool(v)));
  else if (v.is_number()) {
    const double d = json_number(v);
    if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 9.2e18) put(int64_t(d));
    else put(double(d));
  } else if (v.is_string()) put(std::string(json_string(v)));
  else if (v.is_array()) put(toml_array(v));
  else if (v.is_object()) put(toml_table(v));
}

void insert_toml(toml::table& t, const std::string& key, const Json& v) {
  with_toml(v, [&](auto&& x) { t.insert_or_assign(key, std::move(x)); });
}

bool type_ok(ParamType t, const toml::node& n) {
  switch (t) {
    case ParamType::integer: return n.is_integer();
    case ParamType::number: return n.is_number();
    case ParamType::boolean: return n.is_boolean();
    case ParamType::string: return n.is_string();
    case ParamType::node: return n.is_string();
    case ParamType::string_list:
    case ParamType::node_list: {
      if (n.is_string()) return true;
      auto a = n.as_array();
      if (!a) return false;
      for (const auto& e : *a)
        if (!e.is_string()) return false;
      return true;
    }
    case ParamType::integer_list: {
      auto a = n.as_array();
      if (!a) return false;
      for (const auto& e : *a)
        if (!e.is_integer()) return false;
      return true;
    }
    case ParamType::table: return n.is_table();
    case ParamType::any: return true;
  }
  return false;
}

const char* toml_type(const toml::node& n) {
  if (n.is_integer()) return "an integer";
  if (n.is_floating_point()) return "a number";
  if (n.is_boolean()) return "a boolean";
  if (n.is_string()) return "a string";
  if (n.is_array()) return "an array";
  if (n.is_table()) return "a table";
  return "a date or time";
}

class Validator {
 public:
  Validator(std::string file, const PluginRegistry& reg) : file_(std::move(file)), reg_(reg), bases_(path_bases(file_)) {}

  // A value a --set override gave carries the override as its source path (apply_override):
  // its problems name the override, not a place in the file it never came from.
  SourcePos pos(const toml::node& n) const {
    if (auto it = from_override_.find(&n); it != from_override_.end()) return {it->second, 0, 0};
    const auto& s = n.source();
    return {file_, int(s.begin.line), int(s.begin.column)};
  }
  // Records `n` and everything inside it as given by the override `ov`.
  void mark_override(const toml::node& n, const std::string& ov) {
    from_override_[&n] = ov;
    if (auto a = n.as_array())
      for (const auto& e : *a) mark_override(e, ov);
    if (auto t = n.as_table())
      for (auto&& [k, e] : *t) mark_override(e, ov);
  }
  SourcePos pos(const toml::key& k) const {
    const auto& s = k.source();
    // A key an override added has no place in the file (toml++ gives it none).
    if (s.begin.line == 0)
      if (auto it = override_keys_.find(std::string(k.str())); it != override_keys_.end()) return {it->second, 0, 0};
    return {file_, int(s.begin.line), int(s.begin.column)};
  }
  void error(SourcePos p, std::string msg, std::string hint = "") {
    diags_.push_back({std::move(p), std::move(msg), std::move(hint)});
  }
  void unknown_key(const toml::key& k, const std::string& where, const std::vector<std::string>& allowed) {
    const std::string guess = did_you_mean(std::string(k.str()), allowed);
    std::string hint = guess.empty() ? "allowed here: " + join(allowed) : "did you mean '" + guess + "'?";
    error(pos(k), "unknown key '" + std::string(k.str()) + "' in " + where, hint);
  }
  static std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
    return s;
  }

  // Checks a table of parameters against a schema; returns the validated values (defaults
  // filled) and writes the defaults into `t` for the resolved graph. `extra` keys are allowed
  // and skipped (ports, references, core keys).
  Json check_params(toml::table& t, const std::vector<ParamSpec>& schema, const std::string& where,
                    const std::set<std::string>& extra, const SourcePos& table_pos) {
    Json out = Json(Json::object_t{});
    std::vector<std::string> allowed(extra.begin(), extra.end());
    for (const auto& p : schema) allowed.push_back(p.name);
    for (auto&& [k, v] : t) {
      const std::string key(k.str());
      if (extra.count(key)) continue;
      auto it = std::find_if(schema.begin(), schema.end(), [&](const ParamSpec& p) { return p.name == key; });
      if (it == schema.end()) {
        unknown_key(k, where, allowed);
        continue;
      }
      if (!type_ok(it->type, v)) {
        error(pos(v), "'" + key + "' in " + where + " must be " + param_type_name(it->type) + ", got " + toml_type(v),
              it->doc.empty() ? "" : key + ": " + it->doc);
        continue;
      }
      Json val = to_json(v);
      if (it->type == ParamType::number && v.is_integer()) val = Json(double(v.as_integer()->get()));
      check_value(*it, v, where);
      if (it->path) resolve_paths(v, key, where);
      out[key] = it->path ? to_json(v) : std::move(val);
    }
    for (const auto& p : schema) {
      if (out.contains(p.name)) continue;
      if (p.required) {
        error(table_pos, where + " needs '" + p.name + "' (" + param_type_name(p.type) + ")", p.doc);
        continue;
      }
      out[p.name] = p.path ? resolve_default(p, where, table_pos) : p.default_value;
      if (!out[p.name].is_null()) insert_toml(t, p.name, out[p.name]);
    }
    return out;
  }

  // A file parameter's strings (a string, each string of a list, each string or list of
  // strings in a table) found by the rule of runtime/paths.h: each is rewritten in the graph
  // to the path it resolved to, so plugins open exactly what was checked and the resolved
  // graph names it. A string or list that matches nowhere is an error at its position; in a
  // table it is left to the plugin's own check, which knows what the table's keys mean.
  void resolve_paths(toml::node& v, const std::string& key, const std::string& where) {
    // An error is at the value (a list's first character), as every check of a parameter.
    auto one = [&](toml::node& e, bool report) {
      auto s = e.as_string();
      if (!s || s->get().empty()) return;
      if (auto r = resolve_path(s->get(), bases_)) s->get() = *r;
      else if (report)
        error(pos(v), "'" + key + "' in " + where + ": no file matches '" + s->get() + "'",
              "paths are relative to the directory scion runs in, else to the graph's directory, else to Scion's data "
              "directory; tried " + bases_tried(bases_));
    };
    auto strings = [&](toml::node& n, bool report) {
      if (auto a = n.as_array())
        for (auto& e : *a) one(e, report);
      else
        one(n, report);
    };
    if (auto t = v.as_table())
      for (auto&& [k, e] : *t) strings(e, false);
    else
      strings(v, true);
  }

  // The default of a file parameter the graph does not set (a tokenizer's vocabulary), found
  // by the same rule; one that matches nowhere is an error at the node's table.
  Json resolve_default(const ParamSpec& p, const std::string& where, const SourcePos& table_pos) {
    auto one = [&](const std::string& s) -> Json {
      if (s.empty()) return Json(s);
      if (auto r = resolve_path(s, bases_)) return Json(*r);
      error(table_pos, where + ": the default of '" + p.name + "', '" + s + "', matches no file",
            "name the file: " + p.name + " = \"...\" (" + p.doc + "); tried " + bases_tried(bases_));
      return Json(s);
    };
    if (p.default_value.is_string()) return one(json_string(p.default_value));
    if (p.default_value.is_array() && p.type == ParamType::string_list) {
      Json::array_t a;
      for (const Json& e : json_array(p.default_value)) a.push_back(e.is_string() ? one(json_string(e)) : e);
      return Json(std::move(a));
    }
    return p.default_value;
  }

  // The value's elements (the value itself when it is not an array), for per-element rules.
  static std::vector<const toml::node*> elements(const toml::node& v) {
    std::vector<const toml::node*> out;
    if (auto a = v.as_array())
      for (const auto& e : *a) out.push_back(&e);
    else
      out.push_back(&v);
    return out;
  }

  // Choices and ranges, each element of a list on its own: the error is at the element.
  void check_value(const ParamSpec& spec, const toml::node& v, const std::string& where) {
    for (const toml::node* e : elements(v)) {
      if (!spec.choices.empty() && e->is_string()) {
        const std::string s = e->as_string()->get();
        if (std::find(spec.choices.begin(), spec.choices.end(), s) == spec.choices.end()) {
          const std::string guess = did_you_mean(s, spec.choices);
          error(pos(*e), "'" + spec.name + "' in " + where + " must be one of " + join(spec.choices) + ", got '" + s + "'",
                guess.empty() ? spec.name + ": " + spec.doc : "did you mean '" + guess + "'?");
        }
      }
      if ((spec.has_min || spec.has_max) && e->is_number()) {
        const double x = e->is_integer() ? double(e->as_integer()->get()) : e->as_floating_point()->get();
        const bool low = spec.has_min && (spec.min_exclusive ? x <= spec.min : x < spec.min);
        const bool high = spec.has_max && (spec.max_exclusive ? x >= spec.max : x > spec.max);
        if (low || high || std::isnan(x)) {
          std::ostringstream got;
          got << x;
          error(pos(*e), "'" + spec.name + "' in " + where + " must be " + spec.range_text() + ", got " + got.str(),
                spec.name + " is " + spec.range_text() + ": " + spec.doc);
        }
      }
    }
  }

  // Core keys of stages read with their type checked: a value of the wrong type or out of
  // range is an error at the value's position, never silently replaced by the default.
  int64_t integer(const toml::table& t, const char* key, int64_t def, int64_t min, const std::string& where) {
    const toml::node* n = t.get(key);
    if (!n) return def;
    if (!n->is_integer()) {
      error(pos(*n), "'" + std::string(key) + "' in " + where + " must be an integer, got " + toml_type(*n));
      return def;
    }
    const int64_t x = n->as_integer()->get();
    if (x < min) {
      error(pos(*n), "'" + std::string(key) + "' in " + where + " must be at least " + std::to_string(min) + ", got " +
                         std::to_string(x));
      return def;
    }
    return x;
  }
  std::string string(const toml::table& t, const char* key, const std::string& def, const std::string& where) {
    const toml::node* n = t.get(key);
    if (!n) return def;
    if (!n->is_string()) {
      error(pos(*n), "'" + std::string(key) + "' in " + where + " must be a string, got " + toml_type(*n));
      return def;
    }
    return n->as_string()->get();
  }

  std::string file_;
  const PluginRegistry& reg_;
  std::vector<PathBase> bases_;  // where a relative file path is looked for (runtime/paths.h)
  std::vector<Diagnostic> diags_;
  std::map<const toml::node*, std::string> from_override_;  // value -> "--set path=value"
  std::map<std::string, std::string> override_keys_;        // key an override added -> "--set path=value"
};

// param_groups = [{ nodes = [...], match = "glob", plugin = "...", lr = ..., sign = -1, <the
// optimizer's own keys> }]: each group's keys are checked against its optimizer's schema;
// keys it does not give take the stage's values when it uses the stage's optimizer (the
// plugin's defaults otherwise). Whether a pattern selects any parameter can only be known
// once the nodes exist: the executor refuses a group that selects nothing before the first
// update.
void parse_param_groups(Validator& v, toml::table& t, StageSpec& s, const std::map<std::string, NodeSpec>& specs,
                        const std::vector<std::string>& node_names, const PluginRegistry& reg,
                        const std::string& where) {
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
        } else if (specs.count(*name)) {
          v.error(at, "node '" + *name + "' in " + gwhere + " is not trained in it",
                  "a group selects parameters of trained nodes: add '" + *name + "' to train");
        } else {
          const std::string guess = did_you_mean(*name, node_names);
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
    // The group's own optimizer keys; with the stage's optimizer, the stage's values are the
    // defaults (a group changes what it names and nothing else).
    const bool same = g.optimizer == s.optimizer;
    std::vector<ParamSpec> schema = {{"lr", ParamType::number, Json(s.lr), false, "peak learning rate of the group"}};
    for (ParamSpec p : g.optimizer_info->entry.params) {
      if (same && s.optimizer_params.is_object() && s.optimizer_params.contains(p.name))
        p.default_value = s.optimizer_params.at(p.name);
      schema.push_back(p);
    }
    Json params = v.check_params(*gt, schema, gwhere, {"nodes", "match", "plugin", "sign"}, g.pos);
    if (params.contains("lr") && params.at("lr").is_number()) {
      g.lr = json_number(params.at("lr"));
      if (g.lr < 0) v.error(v.pos(*gt->get("lr")), "'lr' in " + gwhere + " must be at least 0");
    }
    g.optimizer_params = params;
    s.param_groups.push_back(std::move(g));
  }
}

// Applies one --set override to the parsed table.
void apply_override(toml::table& root, const std::string& ov, Validator& v) {
  const SourcePos p{"--set " + ov, 0, 0};
  const size_t eq = ov.find('=');
  if (eq == std::string::npos || eq == 0) {
    v.error(p, "an override must look like path.to.key=value");
    return;
  }
  const std::string path = ov.substr(0, eq), value = ov.substr(eq + 1);
  std::vector<std::string> parts;
  std::stringstream ss(path);
  std::string part;
  while (std::getline(ss, part, '.')) parts.push_back(part);
  // [run] is optional with every key defaulted: --set run.seed=3 (and `scion run --device`)
  // works on a graph without one.
  if (parts.size() == 2 && parts[0] == "run" && !root.contains("run")) root.insert("run", toml::table{});
  toml::node* cur = &root;
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    const std::string& k = parts[i];
    toml::node* next = nullptr;
    if (auto t = cur->as_table()) {
      next = t->get(k);
      if (!next) {
        std::vector<std::string> keys;
        for (auto&& [kk, vv] : *t) keys.push_back(std::string(kk.str()));
        const std::string g = did_you_mean(k, keys);
        v.error(p, "--set " + path + ": '" + k + "' does not exist in the graph",
                g.empty() ? "existing keys: " + Validator::join(keys) : "did you mean '" + g + "'?");
        return;
      }
    } else if (auto a = cur->as_array()) {
      char* end = nullptr;
      const long idx = std::strtol(k.c_str(), &end, 10);
      if (*end || idx < 0 || size_t(idx) >= a->size()) {
        v.error(p, "--set " + path + ": '" + k + "' is not an index of an array of " + std::to_string(a->size()));
        return;
      }
      next = a->get(size_t(idx));
    } else {
      v.error(p, "--set " + path + ": '" + parts[i - 1] + "' is not a table or an array");
      return;
    }
    cur = next;
  }
  auto t = cur->as_table();
  if (!t) {
    v.error(p, "--set " + path + ": the parent of '" + parts.back() + "' is not a table");
    return;
  }
  // The value is read as TOML when it parses as TOML (numbers, booleans, arrays, quoted
  // strings) and as a plain string otherwise.
  // Either way the value inserted is marked as the override's, so that a problem with it is
  // reported at the override (Validator::pos), not at a place in the file.
  const std::string source = "--set " + ov;
  auto put = [&](toml::table& parsed) {
    if (!t->contains(parts.back())) v.override_keys_[parts.back()] = source;
    t->insert_or_assign(parts.back(), *parsed.get("v"));
    if (const toml::node* n = t->get(parts.back())) v.mark_override(*n, source);
  };
  try {
    toml::table parsed = toml::parse("v = " + value, source);
    put(parsed);
  } catch (const toml::parse_error&) {
    std::string quoted = "v = \"";
    for (const unsigned char c : value) {
      if (c == '"' || c == '\\') quoted += '\\', quoted += char(c);
      else if (c < 0x20 || c == 0x7f) {
        char esc[8];
        std::snprintf(esc, sizeof esc, "\\u%04x", c);
        quoted += esc;
      } else quoted += char(c);
    }
    try {
      toml::table parsed = toml::parse(quoted + "\"", source);
      put(parsed);
    } catch (const toml::parse_error& e) {  // not UTF-8: TOML strings cannot hold it
      v.error(p, "--set " + path + ": the value is not valid UTF-8 text (" + std::string(e.description()) + ")");
    }
  }
}

}  // namespace

GraphError::GraphError(std::vector<Diagnostic> d) : Error(format(d)), diags_(std::move(d)) {}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::string::npos;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  if (best.empty()) return "";
  const size_t limit = std::max<size_t>(2, word.size() / 3);
  return best_d <= limit ? best : "";
}

const NodeSpec* GraphSpec::node(const std::string& name) const {
  for (const auto& n : nodes)
    if (n.name == name) return &n;
  return nullptr;
}

GraphSpec load_graph(const std::string& file, const std::string& text, const std::vector<std::string>& overrides,
                     const PluginRegistry& reg) {
  Validator v(file, reg);
  toml::table root;
  try {
    root = toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    const auto& s = e.source();
    throw GraphError({{{file, int(s.begin.line), int(s.begin.column)}, "TOML syntax: " + std::string(e.description()),
                       "see https://toml.io for the syntax"}});
  }
  for (const auto& ov : overrides) apply_override(root, ov, v);

  GraphSpec g;
  g.file = file;
  g.name = std::filesystem::path(file).stem().string();
  for (auto&& [k, val] : root)
    if (k.str() != "run" && k.str() != "nodes" && k.str() != "stages")
      v.unknown_key(k, "the graph", {"run", "nodes", "stages"});

  // ---- [run] ----
  if (auto run = root["run"].as_table()) {
    const std::vector<ParamSpec> schema = {
        {"name", ParamType::string, Json(g.name), false, "run name (the run directory is runs/<name>)"},
        {"seed", ParamType::integer, Json(0), false, "seed of every random stream"},
        {"device", ParamType::string, Json("cpu"), false, "cpu | cuda | auto"},
        ParamSpec{"threads", ParamType::integer, Json(0), false, "CPU threads (0 = all)"}.at_least(0),
        str_param("precision", "f32",
                  "matrix products: f32, or bf16 (GEMM inputs rounded to bf16, f32 accumulation; weights, optimizer "
                  "state, LayerNorm, softmax and losses stay f32)")
            .one_of({"f32", "bf16"}),
        str_param("comm", "auto",
                  "data-parallel communicator: auto (MPI for CPU ranks, NCCL for GPU ranks when launched with "
                  "mpirun/srun; none for one process), single, mpi, nccl")
            .one_of({"auto", "single", "mpi", "nccl"}),
        int_param("zero", 0, "ZeRO stage: 1 shards the optimizer state over data-parallel ranks (0 = off)").in_range(0, 1),
        str_param("on_nonfinite", "stop",
                  "a step whose loss or gradient is NaN/Inf: stop the run (exit 4) or skip the step (counted, logged)")
            .one_of({"stop", "skip"})};
    Json r = v.check_params(*run, schema, "[run]", {}, v.pos(*run));
    if (r.contains("name") && r.at("name").is_string()) g.name = json_string(r.at("name"));
    if (r.contains("seed") && r.at("seed").is_number()) g.seed = uint64_t(json_int(r.at("seed")));
    if (r.contains("device") && r.at("device").is_string()) {
      g.device = json_string(r.at("device"));
      const bool indexed = g.device.rfind("cuda:", 0) == 0 && g.device.size() > 5 &&
                           g.device.find_first_not_of("0123456789", 5) == std::string::npos;
      if (g.device != "cpu" && g.device != "cuda" && g.device != "auto" && !indexed)
        v.error(v.pos(*run->get("device")), "'device' in [run] must be cpu, cuda, cuda:N or auto, got '" + g.device + "'",
                did_you_mean(g.device, {"cpu", "cuda", "auto"}).empty()
                    ? "auto picks cuda when a CUDA device is available"
                    : "did you mean '" + did_you_mean(g.device, {"cpu", "cuda", "auto"}) + "'?");
      // A CUDA device this machine does not have: the run would stop before its first update.
      else if (g.device == "cuda" || indexed) {
        const int have = cuda_device_count();
        const long want = indexed ? std::strtol(g.device.c_str() + 5, nullptr, 10) : 0;
        // (A build without the CUDA backend says so: no device could run it.)
#ifdef SCION_HAVE_CUDA
        const std::string lacking = "no CUDA device";
#else
        const std::string lacking = "no CUDA device usable by this build (Scion was built without the CUDA backend)";
#endif
        if (want >= have)
          v.error(v.pos(*run->get("device")),
                  "'device' in [run] is " + g.device + ", but this machine has " +
                      (have == 0 ? lacking : std::to_string(have) + " CUDA device(s)") +
                      (have == 0 ? "" : " (cuda:0 to cuda:" + std::to_string(have - 1) + ")"),
                  "device = \"auto\" uses a CUDA device when there is one and the CPU otherwise; `scion run --device cpu` overrides the graph");
      }
    }
    if (r.contains("threads") && r.at("threads").is_number()) g.threads = int(json_int(r.at("threads")));
    if (r.contains("precision") && r.at("precision").is_string()) g.precision = json_string(r.at("precision"));
    if (r.contains("comm") && r.at("comm").is_string()) g.comm = json_string(r.at("comm"));
    if (r.contains("zero") && r.at("zero").is_number_integer()) g.zero_stage = int(json_int(r.at("zero")));
    if (r.contains("on_nonfinite") && r.at("on_nonfinite").is_string())
      g.skip_nonfinite = json_string(r.at("on_nonfinite")) == "skip";
  }
  // The run directory is runs/<name>: a name that is empty, a path, or hidden would put the
  // run's files outside runs/<name> (or straight into runs/).
  if (!file_name_ok(g.name, true)) {
    const toml::node* at = root["run"].as_table() ? root["run"].as_table()->get("name") : nullptr;
    v.error(at ? v.pos(*at) : SourcePos{file, 1, 1}, "run name '" + g.name + "' cannot name a run directory",
            "use letters, digits, '_', '-' and '.', not starting with '.' (the run goes to runs/<name>; --out DIR "
            "picks another directory)");
  }

  // ---- [nodes.*] ----
  auto nodes_tbl = root["nodes"].as_table();
  std::vector<std::string> node_names;
  std::map<std::string, NodeSpec> specs;
  std::set<std::string> broken;  // declared but invalid: references to them are not errors again
  if (!nodes_tbl || nodes_tbl->empty()) {
    v.error({file, 1, 1}, "the graph has no [nodes.*] tables", "declare at least a data source, a model and a loss");
  } else {
    for (auto&& [k, val] : *nodes_tbl) node_names.push_back(std::string(k.str()));
    for (auto&& [k, val] : *nodes_tbl) {
      const std::string name(k.str());
      auto t = val.as_table();
      if (!t) {
        v.error(v.pos(k), "node '" + name + "' must be a table", "write [nodes." + name + "] with plugin = \"...\"");
        continue;
      }
      if (!file_name_ok(name, false)) {  // its files are <run>/<node>.safetensors
        v.error(v.pos(k), "node name '" + name + "' is not a plain name",
                "use letters, digits, '_' and '-' (a node's files are named after it inside the run directory)");
        broken.insert(name);
        continue;
      }
      NodeSpec n;
      n.name = name;
      n.pos = v.pos(k);
      auto plugin = (*t)["plugin"].value<std::string>();
      if (!plugin) {
        if (auto pn = t->get("plugin"))
          v.error(v.pos(*pn), "'plugin' of node '" + name + "' must be a string, got " + toml_type(*pn),
                  "plugin = \"<name>\"; `scion plugins` lists the plugins found");
        else
          v.error(v.pos(k), "node '" + name + "' has no plugin = \"...\"", "`scion plugins` lists the plugins found");
        broken.insert(name);
        continue;
      }
      n.plugin = *plugin;
      n.info = reg.find(n.plugin);
      if (!n.info) {
        const std::string guess = did_you_mean(n.plugin, reg.names());
        v.error(v.pos(*t->get("plugin")), "node '" + name + "': unknown plugin '" + n.plugin + "'",
                guess.empty() ? "`scion plugins` lists the plugins found" : "did you mean '" + guess + "'?");
        broken.insert(name);
        continue;
      }
      const PluginEntry& e = n.info->entry;
      std::set<std::string> extra = {"plugin"};
      if (e.kind == PluginKind::model) extra.insert("frozen");
      for (const auto& p : e.inputs) extra.insert(p.name);
      const std::string where = "node '" + name + "' (" + n.plugin + ")";
      n.params = v.check_params(*t, e.params, where, extra, n.pos);
      if (auto fr = t->get("frozen")) {
        if (!fr->is_boolean()) v.error(v.pos(*fr), "'frozen' in " + where + " must be a boolean");
        else n.frozen = fr->as_boolean()->get();
      }
      for (const auto& p : e.inputs) {
        auto in = t->get(p.name);
        if (!in) {
          if (!p.optional)
            v.error(n.pos, where + " needs its input '" + p.name + "' (" + p.type + ")",
                    "connect it to another node's output: " + p.name + " = \"node.port\"");
          continue;
        }
        auto s = in->value<std::string>();
        const size_t dot = s ? s->find('.') : std::string::npos;
        if (!s || dot == std::string::npos) {
          v.error(v.pos(*in), "input '" + p.name + "' of " + where + " must name an output as \"node.port\"");
          continue;
        }
        n.inputs[p.name] = *s;
      }
      // Parameters naming nodes: checked (existence, kind) once every node is known, and
      // part of the dependency order.
      for (const auto& p : e.params) {
        if (!n.params.contains(p.name) || (!n.params.at(p.name).is_string() && !n.params.at(p.name).is_array())) continue;
        if (p.type == ParamType::node) n.refs[p.name] = json_string(n.params.at(p.name));
        if (p.type == ParamType::node_list) {
          const Json& list = n.params.at(p.name);
          if (list.is_string()) n.list_refs[p.name] = {json_string(list)};
          else
            for (const Json& x : json_array(list)) n.list_refs[p.name].push_back(json_string(x));
        }
      }
      specs.emplace(name, std::move(n));
    }
  }

  // ---- edges: dangling references, port names and types ----
  // Edges whose ends exist and whose type names agree; their dtypes and shapes are checked
  // once the dependency order is known.
  struct Edge {
    std::string dst, port, src_node, src_port;
    PortType in, out;
  };
  std::vector<Edge> edges;
  auto port_type = [&](const NodeSpec& n, const PortSpec& p) -> std::optional<PortType> {
    auto t = parse_port_type(p.type);
    if (!t)
      v.error(n.pos, "plugin '" + n.plugin + "' declares port '" + p.name + "' with a malformed type '" + p.type + "'",
              "a port type is name or name:dtype[dims], e.g. logits:f32[B,T,{vocab}] (a bug of the plugin)");
    return t;
  };
  auto ref_pos = [&](const std::string& node, const std::string& key) {
    auto t = (*nodes_tbl)[node].as_table();
    auto n = t ? t->get(key) : nullptr;
    return n ? v.pos(*n) : SourcePos{file, 1, 1};
  };
  for (auto& [name, n] : specs) {
    for (const auto& [port, src] : n.inputs) {
      const std::string src_node = src.substr(0, src.find('.')), src_port = src.substr(src.find('.') + 1);
      auto it = specs.find(src_node);
      if (broken.count(src_node)) continue;
      if (it == specs.end()) {
        const std::string guess = did_you_mean(src_node, node_names);
        v.error(ref_pos(name, port), "input '" + port + "' of node '" + name + "' names node '" + src_node +
                                         "', which does not exist",
                guess.empty() ? "nodes: " + Validator::join(node_names) : "did you mean '" + guess + "'?");
        continue;
      }
      const auto& outs = it->second.info->entry.outputs;
      auto op = std::find_if(outs.begin(), outs.end(), [&](const PortSpec& p) { return p.name == src_port; });
      if (op == outs.end()) {
        std::vector<std::string> names;
        for (const auto& p : outs) names.push_back(p.name);
        const std::string guess = did_you_mean(src_port, names);
        v.error(ref_pos(name, port), "node '" + src_node + "' (" + it->second.plugin + ") has no output '" + src_port + "'",
                guess.empty() ? "its outputs: " + Validator::join(names) : "did you mean '" + guess + "'?");
        continue;
      }
      const auto& ins = n.info->entry.inputs;
      auto ip = std::find_if(ins.begin(), ins.end(), [&](const PortSpec& p) { return p.name == port; });
      const auto in_t = port_type(n, *ip), out_t = port_type(it->second, *op);
      if (!in_t || !out_t) continue;
      if (in_t->name != "any" && out_t->name != "any" && in_t->name != out_t->name)
        v.error(ref_pos(name, port), "port types differ: '" + src + "' is " + op->type + " but input '" + port +
                                         "' of node '" + name + "' takes " + ip->type,
                "connect an output of type " + in_t->name);
      else
        edges.push_back({name, port, src_node, src_port, *in_t, *out_t});
    }
    // A named node must exist and be of the kind the parameter declares.
    auto check_ref = [&](const std::string& key, const std::string& target, SourcePos at) {
      const ParamSpec* spec = nullptr;
      for (const auto& p : n.info->entry.params)
        if (p.name == key) spec = &p;
      auto it = specs.find(target);
      if (it == specs.end()) {
        if (broken.count(target)) return;
        const std::string guess = did_you_mean(target, node_names);
        v.error(at, "'" + key + "' of node '" + name + "' names node '" + target + "', which does not exist",
                guess.empty() ? "nodes: " + Validator::join(node_names) : "did you mean '" + guess + "'?");
      } else if (spec && spec->has_kind && it->second.info->entry.kind != spec->node_kind) {
        std::vector<std::string> fit;
        for (const auto& [other, os] : specs)
          if (os.info->entry.kind == spec->node_kind) fit.push_back(other);
        v.error(at, "'" + key + "' of node '" + name + "' names node '" + target + "', a " +
                        kind_name(it->second.info->entry.kind) + " (" + it->second.plugin + "), but needs a " +
                        kind_name(spec->node_kind) + " node",
                fit.empty() ? "the graph has no " + std::string(kind_name(spec->node_kind)) + " node"
                            : std::string(kind_name(spec->node_kind)) + " nodes: " + Validator::join(fit));
      }
    };
    for (const auto& [key, target] : n.refs) check_ref(key, target, ref_pos(name, key));
    for (const auto& [key, targets] : n.list_refs) {
      auto t = (*nodes_tbl)[name].as_table();
      auto list = t ? t->get(key) : nullptr;
      for (size_t i = 0; i < targets.size(); ++i) {
        const toml::node* e = list && list->is_array() ? list->as_array()->get(i) : list;
        check_ref(key, targets[i], e ? v.pos(*e) : ref_pos(name, key));
      }
    }
  }

  // ---- cycles (through inputs and references), and a dependency order ----
  std::map<std::string, int> state;  // 0 new, 1 visiting, 2 done
  std::vector<std::string> order;
  std::function<void(const std::string&, std::vector<std::string>&)> visit = [&](const std::string& n,
                                                                               std::vector<std::string>& path) {
    auto it = specs.find(n);
    if (it == specs.end()) return;
    if (state[n] == 2) return;
    if (state[n] == 1) {
      std::string cyc;
      auto from = std::find(path.begin(), path.end(), n);
      for (auto p = from; p != path.end(); ++p) cyc += *p + " -> ";
      v.error(it->second.pos, "the graph has a cycle: " + cyc + n, "a node cannot depend on its own output");
      return;
    }
    state[n] = 1;
    path.push_back(n);
    for (const auto& [port, src] : it->second.inputs) visit(src.substr(0, src.find('.')), path);
    for (const auto& [key, target] : it->second.refs) visit(target, path);
    for (const auto& [key, targets] : it->second.list_refs)
      for (const auto& target : targets) visit(target, path);
    path.pop_back();
    state[n] = 2;
    order.push_back(n);
  };
  for (const auto& n : node_names) {
    std::vector<std::string> path;
    if (!state[n]) visit(n, path);
  }

  // ---- dtypes and shapes, in dependency order: a symbol bound by a node's inputs ("B")
  // sizes its outputs too ----
  std::map<std::string, std::map<std::string, std::pair<int64_t, std::string>>> bound;  // node -> symbol -> size, from
  auto param_dim = [&](const std::string& node, const std::string& dim) -> std::optional<int64_t> {
    const Json& p = specs.at(node).params;
    const std::string key = dim.substr(1, dim.size() - 2);
    if (p.is_object() && p.contains(key) && p.at(key).is_number()) return int64_t(json_number(p.at(key)));
    return std::nullopt;
  };
  auto resolve = [&](const std::string& node, const std::string& dim) -> std::optional<int64_t> {
    switch (dim_kind(dim)) {
      case DimKind::number: return std::stoll(dim);
      case DimKind::param: return param_dim(node, dim);
      case DimKind::symbol: {
        auto it = bound[node].find(dim);
        if (it != bound[node].end()) return it->second.first;
        return std::nullopt;
      }
      case DimKind::any: break;
    }
    return std::nullopt;
  };
  for (const std::string& name : order) {
    for (const Edge& e : edges) {
      if (e.dst != name) continue;
      const std::string src = e.src_node + "." + e.src_port;
      const std::string what = "'" + src + "' into input '" + e.port + "' of node '" + name + "'";
      const SourcePos at = ref_pos(name, e.port);
      if (!e.in.dtype.empty() && !e.out.dtype.empty() && e.in.dtype != e.out.dtype) {
        v.error(at, "dtypes differ: " + what + ": " + e.out.dtype + " given, " + e.in.dtype + " taken",
                "connect an output of dtype " + e.in.dtype);
        continue;
      }
      if (!e.in.shaped || !e.out.shaped) continue;
      if (e.in.dims.size() != e.out.dims.size()) {
        v.error(at, "ranks differ: " + what + ": " + std::to_string(e.out.dims.size()) + " dimensions given, " +
                        std::to_string(e.in.dims.size()) + " taken",
                "'" + src + "' is " + e.out.name + "[" + Validator::join(e.out.dims) + "]");
        continue;
      }
      for (size_t i = 0; i < e.in.dims.size(); ++i) {
        const auto given = resolve(e.src_node, e.out.dims[i]);
        if (!given) continue;
        const std::string& d = e.in.dims[i];
        std::optional<int64_t> want;
        std::string why;
        switch (dim_kind(d)) {
          case DimKind::number: want = std::stoll(d), why = "the input's fixed size"; break;
          case DimKind::param:
            want = param_dim(name, d);
            why = "parameter '" + d.substr(1, d.size() - 2) + "' of node '" + name + "'";
            break;
          case DimKind::symbol: {
            auto [it, fresh] = bound[name].emplace(d, std::make_pair(*given, src));
            if (!fresh) want = it->second.first, why = "'" + it->second.second + "' (both are " + d + ")";
            break;
          }
          case DimKind::any: break;
        }
        if (want && *want != *given) {
          v.error(at, "shapes differ: " + what + ": dimension " + std::to_string(i) + " is " + std::to_string(*given) +
                          " but " + std::to_string(*want) + " is needed",
                  "the " + std::to_string(*want) + " comes from " + why);
          break;
        }
      }
    }
  }

  // ---- [[stages]] ----
  auto stages = root["stages"].as_array();
  if (!stages || stages->empty()) {
    v.error({file, 1, 1}, "the graph has no [[stages]]", "add [[stages]] with steps, train, losses and optimizer");
  } else {
    int si = 0;
    for (auto& sv : *stages) {
      auto t = sv.as_table();
      const std::string where = "stage " + std::to_string(si);
      if (!t) {
        v.error(v.pos(sv), where + " must be a table");
        continue;
      }
      StageSpec s;
      s.pos = v.pos(sv);
      const std::vector<std::string> keys = {"name", "steps", "train", "losses", "optimizer", "eval",
                                             "checkpoint", "ops", "data", "log_every", "param_groups"};
      for (auto&& [k, val] : *t)
        if (std::find(keys.begin(), keys.end(), std::string(k.str())) == keys.end()) v.unknown_key(k, where, keys);
      s.name = v.string(*t, "name", "stage" + std::to_string(si), where);
      if (auto st = t->get("steps"); st && st->is_integer() && st->as_integer()->get() > 0) s.steps = st->as_integer()->get();
      else v.error(st ? v.pos(*st) : v.pos(*t), where + " needs steps = <positive integer>");
      s.log_every = v.integer(*t, "log_every", 1, 1, where);
      // `kinds`: the kinds the list may name (train: models, and losses or prompts that own
      // parameters of their own).
      auto node_list = [&](const char* key, std::vector<PluginKind> kinds, std::vector<std::string>& out) {
        auto n = t->get(key);
        if (!n) return;
        auto a = n->as_array();
        if (!a) {
          v.error(v.pos(*n), "'" + std::string(key) + "' in " + where + " must be an array of node names");
          return;
        }
        for (auto& e : *a) {
          auto name = e.value<std::string>();
          if (!name) {
            v.error(v.pos(e), "'" + std::string(key) + "' in " + where + " must list node names");
            continue;
          }
          auto it = specs.find(*name);
          if (broken.count(*name)) continue;
          if (it == specs.end()) {
            const std::string guess = did_you_mean(*name, node_names);
            v.error(v.pos(e), "'" + std::string(key) + "' in " + where + " names node '" + *name + "', which does not exist",
                    guess.empty() ? "" : "did you mean '" + guess + "'?");
          } else if (std::find(kinds.begin(), kinds.end(), it->second.info->entry.kind) == kinds.end()) {
            std::string want;
            for (size_t i = 0; i < kinds.size(); ++i)
              want += std::string(i == 0 ? "" : i + 1 == kinds.size() ? " or " : ", ") + kind_name(kinds[i]);
            v.error(v.pos(e), "node '" + *name + "' in '" + key + "' of " + where + " is a " +
                                  kind_name(it->second.info->entry.kind) + ", not a " + want);
          } else {
            out.push_back(*name);
          }
        }
      };
      node_list("train", {PluginKind::model, PluginKind::loss, PluginKind::prompt}, s.train);
      node_list("data", {PluginKind::data}, s.data);
      for (const auto& m : s.train)
        if (specs.at(m).frozen)
          v.error(v.pos(*t->get("train")), "node '" + m + "' is frozen and cannot be trained in " + where);
      if (auto l = t->get("losses")) {
        if (l->is_array()) {
          std::vector<std::string> names;
          node_list("losses", {PluginKind::loss}, names);
          for (auto& n : names) s.losses.push_back({n, 1.0});
        } else if (auto lt = l->as_table()) {
          for (auto&& [k, w] : *lt) {
            const std::string n(k.str());
            auto it = specs.find(n);
            if (it == specs.end() || it->second.info->entry.kind != PluginKind::loss)
              v.error(v.pos(k), "'" + n + "' in the losses of " + where + " is not a loss node",
                      did_you_mean(n, node_names).empty() ? "" : "did you mean '" + did_you_mean(n, node_names) + "'?");
            else if (!w.is_number())
              v.error(v.pos(w), "the weight of loss '" + n + "' must be a number");
            else
              s.losses.push_back({n, w.value<double>().value_or(1.0)});
          }
        } else {
          v.error(v.pos(*l), "'losses' in " + where + " must be an array of loss nodes or a table loss = weight");
        }
      }
      if (s.losses.empty() && !s.train.empty()) v.error(v.pos(*t), where + " trains models but has no losses");
      // What the stage's losses need each step (through inputs): every trained model must be
      // among it, and its data nodes must be ones the stage's data list allows.
      std::set<std::string> upstream;
      std::function<void(const std::string&)> up = [&](const std::string& n) {
        auto it = specs.find(n);
        if (it == specs.end() || !upstream.insert(n).second) return;
        for (const auto& [port, src] : it->second.inputs) up(src.substr(0, src.find('.')));
      };
      for (const auto& [l, w] : s.losses) up(l);
      if (!s.losses.empty())
        for (const auto& m : s.train)
          if (!upstream.count(m))
            v.error(v.pos(*t->get("train")), "node '" + m + "' is trained in " + where + " but none of its losses depends on it",
                    "connect a loss of the stage to the model's outputs, or take it out of train");
      if (!s.data.empty())
        for (const auto& n : upstream)
          if (specs.at(n).info->entry.kind == PluginKind::data && std::find(s.data.begin(), s.data.end(), n) == s.data.end())
            v.error(v.pos(*t->get("data")), "the losses of " + where + " read data node '" + n + "', which is not in its data list",
                    "add '" + n + "' to data, or connect the losses to a listed data node");
      // A stage that trains without an optimizer table gets AdamW with its defaults, written
      // into the resolved graph like every other default.
      if (!t->get("optimizer") && t->get("train")) t->insert("optimizer", toml::table{});
      if (auto o = t->get("optimizer")) {
        if (auto ot = o->as_table()) {
          s.optimizer = v.string(*ot, "plugin", "optim.adamw", "the optimizer of " + where);
          s.optimizer_info = reg.find(s.optimizer);
          if (!s.optimizer_info || s.optimizer_info->entry.kind != PluginKind::optimizer) {
            const std::string guess = did_you_mean(s.optimizer, reg.names());
            v.error(v.pos(*o), where + ": '" + s.optimizer + "' is not an optimizer plugin",
                    guess.empty() ? "" : "did you mean '" + guess + "'?");
          } else {
            const std::vector<ParamSpec> sched = {
                num_param("lr", 3e-4, "peak learning rate").at_least(0),
                int_param("warmup", 0, "linear warmup steps").at_least(0),
                str_param("decay", "cosine", "learning-rate decay after warmup").one_of({"constant", "linear", "cosine"}),
                num_param("min_lr", 0.0, "learning rate at the end of the decay").at_least(0),
                num_param("clip", 1.0, "global gradient-norm clip (0 = off)").at_least(0)};
            std::vector<ParamSpec> all = sched;
            for (const auto& p : s.optimizer_info->entry.params) all.push_back(p);
            Json params = v.check_params(*ot, all, "the optimizer of " + where, {"plugin"}, v.pos(*o));
            if (params.contains("lr") && params.at("lr").is_number()) s.lr = json_number(params.at("lr"));
            if (params.contains("warmup") && params.at("warmup").is_number()) s.warmup = json_int(params.at("warmup"));
            if (params.contains("decay") && params.at("decay").is_string()) s.decay = json_string(params.at("decay"));
            if (params.contains("min_lr") && params.at("min_lr").is_number()) s.min_lr = json_number(params.at("min_lr"));
            if (params.contains("clip") && params.at("clip").is_number()) s.clip = json_number(params.at("clip"));
            s.optimizer_params = params;
          }
        } else {
          v.error(v.pos(*o), "'optimizer' in " + where + " must be a table { plugin = ..., lr = ... }");
        }
      } else {
        s.optimizer_info = reg.find(s.optimizer);
        s.optimizer_params = Json(Json::object_t{});
        if (!s.train.empty() && !s.optimizer_info)
          v.error(v.pos(*t), where + " trains models but plugin 'optim.adamw' was not found");
      }
      if (auto e = t->get("eval")) {
        if (auto et = e->as_table()) {
          s.eval_every = v.integer(*et, "every", 0, 0, "eval of " + where);
          if (auto ev = et->get("evaluators"); ev && !ev->is_array())
            v.error(v.pos(*ev), "'evaluators' in eval of " + where + " must be an array of evaluator nodes");
          if (auto a = (*et)["evaluators"].as_array()) {
            for (auto& x : *a) {
              auto name = x.value<std::string>();
              auto it = name ? specs.find(*name) : specs.end();
              if (it == specs.end() || it->second.info->entry.kind != PluginKind::evaluator)
                v.error(v.pos(x), "'" + name.value_or("?") + "' in the evaluators of " + where + " is not an evaluator node");
              else
                s.evaluators.push_back(*name);
            }
          }
          for (auto&& [k, val] : *et)
            if (k.str() != "every" && k.str() != "evaluators") v.unknown_key(k, "eval of " + where, {"every", "evaluators"});
        } else {
          v.error(v.pos(*e), "'eval' in " + where + " must be a table { every = N, evaluators = [...] }");
        }
      }
      if (auto c = t->get("checkpoint")) {
        if (auto ct = c->as_table()) {
          s.checkpoint_every = v.integer(*ct, "every", 0, 0, "checkpoint of " + where);
          for (auto&& [k, val] : *ct)
            if (k.str() != "every") v.unknown_key(k, "checkpoint of " + where, {"every"});
        } else {
          v.error(v.pos(*c), "'checkpoint' in " + where + " must be a table { every = N }");
        }
      }
      if (auto o = t->get("ops")) {
        auto a = o->as_array();
        if (!a) v.error(v.pos(*o), "'ops' in " + where + " must be an array of tables");
        for (size_t oi = 0; a && oi < a->size(); ++oi) {
          auto ot = a->get(oi)->as_table();
          if (!ot) {
            v.error(v.pos(*a->get(oi)), "each op in " + where + " must be a table { plugin = ..., target = ... }");
            continue;
          }
          OpSpec op;
          bool typed = true;
          for (const char* key : {"plugin", "target"})
            if (auto kn = ot->get(key); kn && !kn->is_string()) {
              v.error(v.pos(*kn), "'" + std::string(key) + "' of an op in " + where + " must be a string, got " + toml_type(*kn),
                      std::string(key) == "plugin" ? "plugin = \"<op plugin>\"; `scion plugins` lists them"
                                                   : "target = \"<model node>\"");
              typed = false;
            }
          if (!typed) continue;
          op.plugin = (*ot)["plugin"].value_or<std::string>("");
          op.target = (*ot)["target"].value_or<std::string>("");
          op.info = reg.find(op.plugin);
          if (!op.info || op.info->entry.kind != PluginKind::op) {
            const std::string guess = did_you_mean(op.plugin, reg.names());
            v.error(v.pos(*ot), "'" + op.plugin + "' in the ops of " + where + " is not an op plugin",
                    guess.empty() ? "" : "did you mean '" + guess + "'?");
            continue;
          }
          auto tg = specs.find(op.target);
          if (tg == specs.end() || tg->second.info->entry.kind != PluginKind::model) {
            v.error(v.pos(*ot), "op '" + op.plugin + "' in " + where + " needs target = \"<model node>\"");
            continue;
          }
          op.params = v.check_params(*ot, op.info->entry.params, "op '" + op.plugin + "' of " + where,
                                     {"plugin", "target"}, v.pos(*ot));
          s.ops.push_back(std::move(op));
        }
      }
      parse_param_groups(v, *t, s, specs, node_names, reg, where);
      g.stages.push_back(std::move(s));
      ++si;
    }
  }

  // ---- the plugins' own checks, on the whole graph: only once everything above holds, so
  // that a check sees nodes, ports and stages that are what they say ----
  if (v.diags_.empty()) {
    GraphView view;
    for (const auto& name : order) {
      const NodeSpec& n = specs.at(name);
      Json params = n.params;
      for (const auto& [k, target] : n.refs) params[k] = Json(target);
      view.nodes.push_back({n.name, n.plugin, n.info->entry.kind, Params(params, n.name), n.inputs});
    }
    for (const StageSpec& s : g.stages) {
      GraphStageView sv{s.name, s.steps, s.eval_every, s.train, {}, s.evaluators, s.data};
      for (const auto& [l, w] : s.losses) sv.losses.push_back(l);
      view.stages.push_back(std::move(sv));
    }
    // The node at a dotted path inside `base` ("stage_files.teacher", "data.1"): the deepest
    // part that exists, so a problem with a default points at its table.
    auto locate = [&](const toml::node* base, const std::string& path, const SourcePos& fallback) -> SourcePos {
      const toml::node* cur = base;
      std::stringstream ss(path);
      std::string part;
      while (cur && !path.empty() && std::getline(ss, part, '.')) {
        const toml::node* next = nullptr;
        if (auto t = cur->as_table()) next = t->get(part);
        else if (auto a = cur->as_array(); a && !part.empty() && part.find_first_not_of("0123456789") == std::string::npos)
          next = a->get(size_t(std::stoul(part)));
        if (!next) break;
        cur = next;
      }
      // A table made by a [header] has no position of its own in toml++: the node's key has.
      // A value a --set override gave is located at the override (line 0, another "file").
      const SourcePos at = cur ? v.pos(*cur) : fallback;
      return at.line > 0 || at.file != v.file_ ? at : fallback;
    };
    for (const GraphNodeView& self : view.nodes) {
      const NodeSpec& n = specs.at(self.name);
      if (!n.info->entry.check) continue;
      std::vector<GraphProblem> problems;
      try {
        problems = n.info->entry.check(view, self);
      } catch (const std::exception& e) {
        problems.push_back({"", std::string("the plugin's graph check failed: ") + e.what(), "a bug of the plugin"});
      }
      for (const GraphProblem& p : problems) {
        SourcePos at = n.pos;
        if (p.stage >= 0 && stages && size_t(p.stage) < stages->size())
          at = locate(stages->get(size_t(p.stage)), p.at, v.pos(*stages->get(size_t(p.stage))));
        else if (!p.at.empty())
          at = locate((*nodes_tbl).get(n.name), p.at, n.pos);
        v.error(at, "node '" + n.name + "' (" + n.plugin + "): " + p.message, p.hint);
      }
    }
  }

  if (!v.diags_.empty()) throw GraphError(v.diags_);
  for (const auto& n : order) g.nodes.push_back(specs.at(n));
  std::ostringstream os;
  os << "# resolved by scion: every default filled in\n" << root << "\n";
  g.resolved_toml = os.str();
  return g;
}

GraphSpec load_graph_file(const std::string& file, const std::vector<std::string>& overrides,
                          const PluginRegistry& reg) {
  // Said in words, with the file: the C++ library's own messages ("basic_filebuf::underflow
  // error reading the file: Is a directory") name neither.
  std::error_code ec;
  if (std::filesystem::is_directory(file, ec))
    throw GraphError({{{file, 0, 0}, "this is a directory, not a graph file", "name a .toml graph file (graphs/*.toml)"}});
  errno = 0;
  std::ifstream in(file, std::ios::binary);
  if (!in) {
    const int err = errno;
    throw GraphError({{{file, 0, 0},
                       std::string("cannot open the graph file") + (err ? std::string(": ") + std::strerror(err) : ""),
                       err == ENAMETOOLONG ? "the path (or one of its folder names) is longer than the system allows"
                                           : "check the path"}});
  }
  std::string text;
  try {
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  } catch (const std::exception&) {
    text.clear();
  }
  if (in.bad()) throw GraphError({{{file, 0, 0}, "cannot read the graph file", "is it a regular, readable file?"}});
  return load_graph(file, text, overrides, reg);
}

}  // namespace scion::runtime
