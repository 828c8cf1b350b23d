// [nodes.*]: each node's plugin, parameters (its plugin's schema), inputs and the nodes its
// parameters name.
#include "graph/passes.h"

namespace scion::runtime {

namespace {

// Inputs as "node.port"; whether the named node and port exist is the edges' check.
void read_inputs(const toml::table& t, const PluginEntry& e, const std::string& where, NodeSpec& n, Validator& v) {
  for (const auto& p : e.inputs) {
    auto in = t.get(p.name);
    if (!in) {
      if (!p.optional)
        v.error(n.pos, where + " needs its input '" + p.name + "' (" + p.type + ")",
                "connect it to another node's output: " + p.name + " = \"node.port\"");
      continue;
    }
    auto s = in->value<std::string>();
    auto ref = s ? PortRef::parse(*s) : std::nullopt;
    if (!ref) {
      v.error(v.pos(*in), "input '" + p.name + "' of " + where + " must name an output as \"node.port\"");
      continue;
    }
    n.inputs[p.name] = *ref;
  }
}

// Parameters naming nodes: checked (existence, kind) once every node is known (edges.cpp),
// and part of the dependency order.
void read_refs(const PluginEntry& e, NodeSpec& n) {
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
}

// One [nodes.<name>] table; nullopt when its name or plugin is unusable (the node is broken).
std::optional<NodeSpec> check_node(const toml::key& k, toml::table& t, Validator& v) {
  const std::string name(k.str());
  if (!file_name_ok(name, false)) {  // its files are <run>/<node>.safetensors
    v.error(v.pos(k), "node name '" + name + "' is not a plain name",
            "use letters, digits, '_' and '-' (a node's files are named after it inside the run directory)");
    return std::nullopt;
  }
  NodeSpec n;
  n.name = name;
  n.pos = v.pos(k);
  auto plugin = t["plugin"].value<std::string>();
  if (!plugin) {
    if (auto pn = t.get("plugin"))
      v.error(v.pos(*pn), "'plugin' of node '" + name + "' must be a string, got " + Validator::toml_type(*pn),
              "plugin = \"<name>\"; `scion plugins` lists the plugins found");
    else
      v.error(v.pos(k), "node '" + name + "' has no plugin = \"...\"", "`scion plugins` lists the plugins found");
    return std::nullopt;
  }
  n.plugin = *plugin;
  n.info = v.registry().find(n.plugin);
  if (!n.info) {
    const std::string guess = did_you_mean(n.plugin, v.registry().names());
    v.error(v.pos(*t.get("plugin")), "node '" + name + "': unknown plugin '" + n.plugin + "'",
            guess.empty() ? "`scion plugins` lists the plugins found" : "did you mean '" + guess + "'?");
    return std::nullopt;
  }
  const PluginEntry& e = n.info->entry;
  std::set<std::string> extra = {"plugin"};
  if (e.kind == PluginKind::model) extra.insert("frozen");
  for (const auto& p : e.inputs) extra.insert(p.name);
  const std::string where = "node '" + name + "' (" + n.plugin + ")";
  n.params = v.check_params(t, e.params, where, extra, n.pos);
  if (auto fr = t.get("frozen")) {
    if (!fr->is_boolean()) v.error(v.pos(*fr), "'frozen' in " + where + " must be a boolean");
    else n.frozen = fr->as_boolean()->get();
  }
  read_inputs(t, e, where, n, v);
  read_refs(e, n);
  return n;
}

}  // namespace

SourcePos NodeTable::key_pos(const std::string& node, const std::string& key, const Validator& v) const {
  auto t = table ? (*table)[node].as_table() : nullptr;
  auto n = t ? t->get(key) : nullptr;
  return n ? v.pos(*n) : SourcePos{v.file(), 1, 1};
}

NodeTable check_nodes(toml::table& root, Validator& v) {
  NodeTable nodes;
  nodes.table = root["nodes"].as_table();
  if (!nodes.table || nodes.table->empty()) {
    v.error({v.file(), 1, 1}, "the graph has no [nodes.*] tables", "declare at least a data source, a model and a loss");
    return nodes;
  }
  for (auto&& [k, val] : *nodes.table) nodes.names.push_back(std::string(k.str()));
  for (auto&& [k, val] : *nodes.table) {
    const std::string name(k.str());
    auto t = val.as_table();
    if (!t) {
      v.error(v.pos(k), "node '" + name + "' must be a table", "write [nodes." + name + "] with plugin = \"...\"");
      continue;
    }
    if (auto n = check_node(k, *t, v)) nodes.specs.emplace(name, std::move(*n));
    else nodes.broken.insert(name);
  }
  return nodes;
}

}  // namespace scion::runtime
