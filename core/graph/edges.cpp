// Edges (inputs and node references) and the dependency order they make.
#include <algorithm>
#include <functional>
#include <optional>

#include "graph/passes.h"

namespace scion::runtime {

namespace {

std::optional<PortType> port_type(const NodeSpec& n, const PortSpec& p, Validator& v) {
  auto t = parse_port_type(p.type);
  if (!t)
    v.error(n.pos, "plugin '" + n.plugin + "' declares port '" + p.name + "' with a malformed type '" + p.type + "'",
            "a port type is name or name:dtype[dims], e.g. logits:f32[B,T,{vocab}] (a bug of the plugin)");
  return t;
}

// The input `port` of node `n`, fed by `src`: the source node and port must exist and the
// port type names agree.
std::optional<Edge> check_input(const NodeTable& nodes, const NodeSpec& n, const std::string& port, const PortRef& src,
                                Validator& v) {
  if (nodes.broken.count(src.node)) return std::nullopt;
  const SourcePos at = nodes.key_pos(n.name, port, v);
  auto it = nodes.specs.find(src.node);
  if (it == nodes.specs.end()) {
    const std::string guess = did_you_mean(src.node, nodes.names);
    v.error(at, "input '" + port + "' of node '" + n.name + "' names node '" + src.node + "', which does not exist",
            guess.empty() ? "nodes: " + Validator::join(nodes.names) : "did you mean '" + guess + "'?");
    return std::nullopt;
  }
  const NodeSpec& from = it->second;
  const auto& outs = from.info->entry.outputs;
  auto op = std::find_if(outs.begin(), outs.end(), [&](const PortSpec& p) { return p.name == src.port; });
  if (op == outs.end()) {
    std::vector<std::string> names;
    for (const auto& p : outs) names.push_back(p.name);
    const std::string guess = did_you_mean(src.port, names);
    v.error(at, "node '" + src.node + "' (" + from.plugin + ") has no output '" + src.port + "'",
            guess.empty() ? "its outputs: " + Validator::join(names) : "did you mean '" + guess + "'?");
    return std::nullopt;
  }
  const auto& ins = n.info->entry.inputs;
  auto ip = std::find_if(ins.begin(), ins.end(), [&](const PortSpec& p) { return p.name == port; });
  const auto in_t = port_type(n, *ip, v), out_t = port_type(from, *op, v);
  if (!in_t || !out_t) return std::nullopt;
  if (in_t->name != "any" && out_t->name != "any" && in_t->name != out_t->name) {
    v.error(at, "port types differ: '" + src.str() + "' is " + op->type + " but input '" + port + "' of node '" +
                    n.name + "' takes " + ip->type,
            "connect an output of type " + in_t->name);
    return std::nullopt;
  }
  return Edge{n.name, port, src, *in_t, *out_t};
}

// A node a parameter of `n` names must exist and be of the kind the parameter declares.
void check_ref(const NodeTable& nodes, const NodeSpec& n, const std::string& key, const std::string& target,
               const SourcePos& at, Validator& v) {
  const ParamSpec* spec = nullptr;
  for (const auto& p : n.info->entry.params)
    if (p.name == key) spec = &p;
  auto it = nodes.specs.find(target);
  if (it == nodes.specs.end()) {
    if (nodes.broken.count(target)) return;
    const std::string guess = did_you_mean(target, nodes.names);
    v.error(at, "'" + key + "' of node '" + n.name + "' names node '" + target + "', which does not exist",
            guess.empty() ? "nodes: " + Validator::join(nodes.names) : "did you mean '" + guess + "'?");
  } else if (spec && spec->has_kind && it->second.info->entry.kind != spec->node_kind) {
    std::vector<std::string> fit;
    for (const auto& [other, os] : nodes.specs)
      if (os.info->entry.kind == spec->node_kind) fit.push_back(other);
    v.error(at, "'" + key + "' of node '" + n.name + "' names node '" + target + "', a " +
                    kind_name(it->second.info->entry.kind) + " (" + it->second.plugin + "), but needs a " +
                    kind_name(spec->node_kind) + " node",
            fit.empty() ? "the graph has no " + std::string(kind_name(spec->node_kind)) + " node"
                        : std::string(kind_name(spec->node_kind)) + " nodes: " + Validator::join(fit));
  }
}

}  // namespace

std::vector<Edge> check_edges(const NodeTable& nodes, Validator& v) {
  std::vector<Edge> edges;
  for (const auto& [name, n] : nodes.specs) {
    for (const auto& [port, src] : n.inputs)
      if (auto e = check_input(nodes, n, port, src, v)) edges.push_back(std::move(*e));
    for (const auto& [key, target] : n.refs) check_ref(nodes, n, key, target, nodes.key_pos(name, key, v), v);
    for (const auto& [key, targets] : n.list_refs) {
      auto t = (*nodes.table)[name].as_table();
      auto list = t ? t->get(key) : nullptr;
      for (size_t i = 0; i < targets.size(); ++i) {
        const toml::node* e = list && list->is_array() ? list->as_array()->get(i) : list;
        check_ref(nodes, n, key, targets[i], e ? v.pos(*e) : nodes.key_pos(name, key, v), v);
      }
    }
  }
  return edges;
}

std::vector<std::string> dependency_order(const NodeTable& nodes, Validator& v) {
  std::map<std::string, int> state;  // 0 new, 1 visiting, 2 done
  std::vector<std::string> order;
  std::function<void(const std::string&, std::vector<std::string>&)> visit = [&](const std::string& n,
                                                                               std::vector<std::string>& path) {
    auto it = nodes.specs.find(n);
    if (it == nodes.specs.end()) return;
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
    for (const auto& [port, src] : it->second.inputs) visit(src.node, path);
    for (const auto& [key, target] : it->second.refs) visit(target, path);
    for (const auto& [key, targets] : it->second.list_refs)
      for (const auto& target : targets) visit(target, path);
    path.pop_back();
    state[n] = 2;
    order.push_back(n);
  };
  for (const auto& n : nodes.names) {
    std::vector<std::string> path;
    if (!state[n]) visit(n, path);
  }
  return order;
}

}  // namespace scion::runtime
