#include "graph/validator.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <limits>
#include <sstream>

namespace scion::runtime {

namespace fs = std::filesystem;

namespace {

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

// "must be an integer": the schema's type name with its article.
std::string a_type(ParamType t) {
  const std::string name = param_type_name(t);
  return (std::string("aeiou").find(name[0]) == std::string::npos ? "a " : "an ") + name;
}

// The value's elements (the value itself when it is not an array), for per-element rules.
std::vector<const toml::node*> elements(const toml::node& v) {
  std::vector<const toml::node*> out;
  if (auto a = v.as_array())
    for (const auto& e : *a) out.push_back(&e);
  else
    out.push_back(&v);
  return out;
}


}  // namespace

bool file_name_ok(const std::string& n, bool dots) {
  if (n.empty() || n.size() > 100 || n[0] == '.') return false;
  for (char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || (dots && c == '.'))) return false;
  return true;
}

Validator::Validator(std::string file, const PluginRegistry& reg)
    : file_(std::move(file)), reg_(reg), bases_(path_bases(file_)) {}

SourcePos Validator::pos(const toml::node& n) const {
  if (auto it = from_override_.find(&n); it != from_override_.end()) return {it->second, 0, 0};
  const auto& s = n.source();
  return {file_, int(s.begin.line), int(s.begin.column)};
}

SourcePos Validator::pos(const toml::key& k) const {
  const auto& s = k.source();
  // A key an override added has no place in the file (toml++ gives it none).
  if (s.begin.line == 0)
    if (auto it = override_keys_.find(std::string(k.str())); it != override_keys_.end()) return {it->second, 0, 0};
  return {file_, int(s.begin.line), int(s.begin.column)};
}

void Validator::mark_override(const toml::node& n, const std::string& source) {
  from_override_[&n] = source;
  if (auto a = n.as_array())
    for (const auto& e : *a) mark_override(e, source);
  if (auto t = n.as_table())
    for (auto&& [k, e] : *t) mark_override(e, source);
}

void Validator::error(SourcePos p, std::string msg, std::string hint) {
  diags_.push_back({std::move(p), std::move(msg), std::move(hint)});
}

void Validator::unknown_key(const toml::key& k, const std::string& where, const std::vector<std::string>& allowed) {
  const std::string guess = did_you_mean(std::string(k.str()), allowed);
  std::string hint = guess.empty() ? "allowed here: " + join(allowed) : "did you mean '" + guess + "'?";
  error(pos(k), "unknown key '" + std::string(k.str()) + "' in " + where, hint);
}

std::string Validator::join(const std::vector<std::string>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + v[i];
  return s;
}

const char* Validator::toml_type(const toml::node& n) {
  if (n.is_integer()) return "an integer";
  if (n.is_floating_point()) return "a number";
  if (n.is_boolean()) return "a boolean";
  if (n.is_string()) return "a string";
  if (n.is_array()) return "an array";
  if (n.is_table()) return "a table";
  return "a date or time";
}

// Checks a table of parameters against a schema (validator.h).
Json Validator::check_params(toml::table& t, const std::vector<ParamSpec>& schema, const std::string& where,
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
      error(pos(v), "'" + key + "' in " + where + " must be " + a_type(it->type) + ", got " + toml_type(v),
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
void Validator::resolve_paths(toml::node& v, const std::string& key, const std::string& where) {
  // An error is at the value (a list's first character), as every check of a parameter.
  auto one = [&](toml::node& e, bool report) {
    auto s = e.as_string();
    if (!s || s->get().empty()) return;
    std::error_code ec;
    const fs::file_status st = fs::status(s->get(), ec);
    if (auto r = resolve_path(s->get(), bases_)) s->get() = *r;
    else if (report && fs::exists(st) && !fs::is_regular_file(st))
      // Read more than once (epochs, validation, resume): a FIFO or a device would block.
      error(pos(v), "'" + key + "' in " + where + ": '" + s->get() + "' is " +
                        (fs::is_fifo(st) ? "a FIFO (named pipe)" : "not a regular file (a device or a socket)"),
            "name a regular file; Scion reads its inputs more than once (epochs, validation, resume)");
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
Json Validator::resolve_default(const ParamSpec& p, const std::string& where, const SourcePos& table_pos) {
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

// Choices and ranges, each element of a list on its own: the error is at the element.
void Validator::check_value(const ParamSpec& spec, const toml::node& v, const std::string& where) {
  for (const toml::node* e : elements(v)) {
    if (!spec.choices.empty() && e->is_string()) {
      const std::string s = e->as_string()->get();
      if (std::find(spec.choices.begin(), spec.choices.end(), s) == spec.choices.end()) {
        const std::string guess = did_you_mean(s, spec.choices);
        error(pos(*e), "'" + spec.name + "' in " + where + " must be one of " + join(spec.choices) + ", got '" + s + "'",
              guess.empty() ? spec.name + ": " + spec.doc : "did you mean '" + guess + "'?");
      }
    }
    // No parameter means anything by NaN or an infinity (a loss weight, a learning rate, a
    // temperature): refused for every number, whatever its range.
    if (e->is_floating_point() && !std::isfinite(e->as_floating_point()->get())) {
      std::ostringstream got;
      got << e->as_floating_point()->get();
      error(pos(*e), "'" + spec.name + "' in " + where + " must be a finite number, got " + got.str(),
            spec.name + (spec.has_min || spec.has_max ? " is " + spec.range_text() : std::string(" is finite")) + ": " +
                spec.doc);
      continue;
    }
    // Plugins compute in float: a number too small for one is 0 there (a temperature of
    // 1e-50 divides by zero although the schema said "above 0").
    if (e->is_floating_point() && e->as_floating_point()->get() != 0 &&
        std::fabs(e->as_floating_point()->get()) < std::numeric_limits<float>::min()) {
      std::ostringstream got;
      got << e->as_floating_point()->get();
      error(pos(*e), "'" + spec.name + "' in " + where + " is " + got.str() +
                         ", which underflows to 0 in the float arithmetic of the plugins",
            spec.name + ": 0, or at least 1.2e-38 in magnitude: " + spec.doc);
      continue;
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

std::string Validator::string(const toml::table& t, const char* key, const std::string& def, const std::string& where) {
  const toml::node* n = t.get(key);
  if (!n) return def;
  if (!n->is_string()) {
    error(pos(*n), "'" + std::string(key) + "' in " + where + " must be a string, got " + toml_type(*n));
    return def;
  }
  return n->as_string()->get();
}

}  // namespace scion::runtime
