#include "scion/plugin.h"

#include <cstdio>

namespace scion {

const char* kind_name(PluginKind k) {
  switch (k) {
    case PluginKind::data: return "data";
    case PluginKind::tokenizer: return "tokenizer";
    case PluginKind::model: return "model";
    case PluginKind::op: return "op";
    case PluginKind::loss: return "loss";
    case PluginKind::prompt: return "prompt";
    case PluginKind::optimizer: return "optimizer";
    case PluginKind::evaluator: return "evaluator";
  }
  return "?";
}

const char* param_type_name(ParamType t) {
  switch (t) {
    case ParamType::integer: return "integer";
    case ParamType::number: return "number";
    case ParamType::boolean: return "boolean";
    case ParamType::string: return "string";
    case ParamType::string_list: return "list of strings";
    case ParamType::table: return "table";
    case ParamType::any: return "any";
    case ParamType::integer_list: return "list of integers";
    case ParamType::node: return "node name";
    case ParamType::node_list: return "list of node names";
  }
  return "?";
}

namespace {
std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", v);
  return buf;
}
}  // namespace

std::string ParamSpec::range_text() const {
  if (has_min && has_max)
    return std::string("in ") + (min_exclusive ? "(" : "[") + number_text(min) + ", " + number_text(max) +
           (max_exclusive ? ")" : "]");
  if (has_min) return (min_exclusive ? "above " : "at least ") + number_text(min);
  if (has_max) return (max_exclusive ? "below " : "at most ") + number_text(max);
  return "";
}

namespace {
[[noreturn]] void missing(const std::string& node, const std::string& k) {
  throw Error("node '" + node + "': parameter '" + k + "' is not set");
}
}  // namespace

const Json& Params::raw(const std::string& k) const {
  if (!has(k)) missing(node_, k);
  return v_.at(k);
}
int64_t Params::integer(const std::string& k) const { return json_int(raw(k)); }
double Params::number(const std::string& k) const { return json_number(raw(k)); }
bool Params::boolean(const std::string& k) const { return json_bool(raw(k)); }
std::string Params::string(const std::string& k) const { return json_string(raw(k)); }
std::vector<std::string> Params::strings(const std::string& k) const {
  std::vector<std::string> out;
  const Json& v = raw(k);
  if (v.is_string()) return {json_string(v)};
  for (const Json& e : json_array(v)) out.push_back(json_string(e));
  return out;
}
std::vector<int64_t> Params::integers(const std::string& k) const {
  std::vector<int64_t> out;
  for (const Json& e : json_array(raw(k))) out.push_back(json_int(e));
  return out;
}

}  // namespace scion
