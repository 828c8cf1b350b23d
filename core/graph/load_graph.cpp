// load_graph: the passes of passes.h, in order, over the parsed and overridden TOML.
#include <filesystem>
#include <sstream>

#include "graph/passes.h"
#include "graph/source.h"

namespace scion::runtime {

const NodeSpec* GraphSpec::node(const std::string& name) const {
  for (const auto& n : nodes)
    if (n.name == name) return &n;
  return nullptr;
}

GraphSpec load_graph(const std::string& file, const std::string& text, const std::vector<std::string>& overrides,
                     const PluginRegistry& reg) {
  Validator v(file, reg);
  toml::table root = parse_graph(file, text);
  for (const auto& ov : overrides) apply_override(root, ov, v);
  for (auto&& [k, val] : root)
    if (k.str() != "run" && k.str() != "nodes" && k.str() != "stages")
      v.unknown_key(k, "the graph", {"run", "nodes", "stages"});

  GraphSpec g;
  g.file = file;
  g.run = check_run(root, std::filesystem::path(file).stem().string(), v);
  const NodeTable nodes = check_nodes(root, v);
  const std::vector<Edge> edges = check_edges(nodes, v);
  const std::vector<std::string> order = dependency_order(nodes, v);
  check_shapes(nodes, edges, order, v);
  g.stages = check_stages(root, nodes, v);
  if (v.ok()) run_plugin_checks(root, nodes, order, g, v);
  if (!v.ok()) throw GraphError(v.diagnostics());

  for (const auto& n : order) g.nodes.push_back(nodes.specs.at(n));
  g.notes = v.notes();
  std::ostringstream os;
  os << "# resolved by scion: every default filled in\n" << root << "\n";
  g.resolved_toml = os.str();
  return g;
}

GraphSpec load_graph_file(const std::string& file, const std::vector<std::string>& overrides,
                          const PluginRegistry& reg) {
  return load_graph(file, read_graph_file(file), overrides, reg);
}

}  // namespace scion::runtime
