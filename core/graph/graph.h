// A graph file, parsed and validated (load_graph.cpp drives the passes, one file each).
// Every problem is collected with its file:line:column and a hint before anything runs or
// anything is written (docs/graph-reference.md).
#pragma once
#include <map>
#include <string>
#include <vector>

#include "graph/diagnostics.h"
#include "graph/port_ref.h"
#include "graph/run_spec.h"
#include "runtime/registry.h"
#include "scion/json.h"

namespace scion::runtime {

struct NodeSpec {
  std::string name;
  std::string plugin;
  const LoadedPlugin* info = nullptr;
  Json params;                                  // validated, defaults filled
  std::map<std::string, PortRef> inputs;        // input port -> the output feeding it
  std::map<std::string, std::string> refs;      // node parameter -> node
  std::map<std::string, std::vector<std::string>> list_refs;  // node-list parameter -> nodes
  bool frozen = false;
  SourcePos pos;
};

struct OpSpec {
  std::string plugin;
  std::string target;  // model node
  const LoadedPlugin* info = nullptr;
  Json params;
};

// One parameter group of a stage (param_groups = [{ nodes = [...], match = "*", ... }]):
// optimizer settings for the parameters of the listed trained nodes whose names match the
// glob. A parameter belongs to the first group that selects it, else to the stage's default
// group (the stage's optimizer table).
struct ParamGroupSpec {
  std::vector<std::string> nodes;  // trained nodes; empty: every trained node
  std::string match = "*";         // fnmatch glob on the parameter's name within its node
  std::string optimizer;           // plugin; the stage's unless the group names its own
  const LoadedPlugin* optimizer_info = nullptr;
  Json optimizer_params;           // the plugin's parameters (the stage's values by default)
  double lr = 0;                   // peak lr; the stage's schedule scales it
  int sign = 1;                    // -1: gradient ascent (Lagrange multipliers)
  bool clip = true;                // false: outside the stage's gradient clipping and its norm
  bool lr_schedule = true;         // false: the group's lr stays at its peak (no warmup, no decay)
  SourcePos pos;
};

struct StageSpec {
  std::string name;
  int64_t steps = 0;
  std::vector<std::string> train;              // nodes whose parameters are trained (models, and other
                                               // nodes that own parameters: Plugin::owned_parameters)
  std::vector<std::pair<std::string, double>> losses;  // loss node -> weight
  std::string optimizer = "optim.adamw";
  const LoadedPlugin* optimizer_info = nullptr;
  Json optimizer_params;
  double lr = 3e-4, min_lr = 0.0, clip = 1.0;
  int64_t warmup = 0;
  std::string decay = "cosine";                // constant | linear | cosine
  // The schedule the stage reads (schedule = "continue" joins it to the stage before): its
  // position is schedule_offset + the stage's step, over schedule_steps (= steps when alone).
  bool continue_schedule = false;
  int64_t schedule_offset = 0, schedule_steps = 0;
  int64_t eval_every = 0;
  std::vector<std::string> evaluators;
  int64_t checkpoint_every = 0;
  int64_t log_every = 1;
  std::vector<OpSpec> ops;
  std::vector<std::string> data;               // data nodes active in this stage (default: all)
  std::vector<ParamGroupSpec> param_groups;    // in order: the first that selects a parameter wins
  SourcePos pos;
};

struct GraphSpec {
  std::string file;
  RunSpec run;                  // [run]
  std::vector<NodeSpec> nodes;  // in dependency order (inputs and references first)
  std::vector<StageSpec> stages;
  std::string resolved_toml;    // the graph with every default filled in
  std::vector<Diagnostic> notes;  // what the plugins' checks computed for the user (validate prints them)
  const NodeSpec* node(const std::string& name) const;
};

// Parses `text` (named `file` in messages), applies `overrides` ("a.b.0.c=value"), and
// validates against the registry. Throws GraphError with every problem found.
GraphSpec load_graph(const std::string& file, const std::string& text, const std::vector<std::string>& overrides,
                     const PluginRegistry& registry);
GraphSpec load_graph_file(const std::string& file, const std::vector<std::string>& overrides,
                          const PluginRegistry& registry);

}  // namespace scion::runtime
