// The passes of load_graph (internal to core/graph), in the order load_graph.cpp runs them:
// [run], [nodes.*], edges, cycles and dependency order, dtypes and shapes, [[stages]], and the
// plugins' own checks. Each reports its problems to the Validator and goes on, so that one
// validation lists every problem of the graph.
#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "graph/graph.h"
#include "graph/validator.h"
#include "graph/port_type.h"

namespace scion::runtime {

// [run] (run_spec.cpp); `default_name` is the graph file's stem.
RunSpec check_run(toml::table& root, const std::string& default_name, Validator& v);

// The [nodes.*] tables (nodes.cpp).
struct NodeTable {
  toml::table* table = nullptr;            // [nodes]; null when the graph has none
  std::vector<std::string> names;          // every declared node, in file order
  std::map<std::string, NodeSpec> specs;   // the nodes whose plugin and parameters validated
  std::set<std::string> broken;            // declared but invalid: references to them are not errors again
  // Where a node's key is in the file (an input, a reference), else the file's start.
  SourcePos key_pos(const std::string& node, const std::string& key, const Validator& v) const;
};
NodeTable check_nodes(toml::table& root, Validator& v);

// An edge whose ends exist and whose port type names agree (edges.cpp); its dtypes and shapes
// are checked once the dependency order is known (shapes.cpp).
struct Edge {
  std::string dst, port;  // the input
  PortRef src;            // the output feeding it
  PortType in, out;
};
// Dangling inputs and references, unknown ports, port types that differ, references to
// nodes of the wrong kind.
std::vector<Edge> check_edges(const NodeTable& nodes, Validator& v);
// The nodes in dependency order (inputs and references first); a cycle is an error.
std::vector<std::string> dependency_order(const NodeTable& nodes, Validator& v);

// Dtypes and shapes of every edge, in dependency order (shapes.cpp).
void check_shapes(const NodeTable& nodes, const std::vector<Edge>& edges, const std::vector<std::string>& order,
                  Validator& v);

// [[stages]] (stages.cpp, param_groups.cpp).
std::vector<StageSpec> check_stages(toml::table& root, const NodeTable& nodes, Validator& v);
void check_param_groups(toml::table& stage, StageSpec& s, const NodeTable& nodes, const std::string& where,
                        Validator& v);

// The plugins' own checks on the whole graph (plugin_checks.cpp), run only when everything
// above holds, so that a check sees nodes, ports and stages that are what they say.
void run_plugin_checks(const toml::table& root, const NodeTable& nodes, const std::vector<std::string>& order,
                       const GraphSpec& graph, Validator& v);

}  // namespace scion::runtime
