// For tests that load and run graphs inside the test process (no `scion` executable): the
// registry of the in-tree plugins (and, where a test defines SCION_TEST_PLUGINS, the testing
// plugins), a graph run into a folder, a graph's
// validation error.
#pragma once
#include <string>
#include <vector>

#include "../test_files.h"
#include "runtime/executor.h"
#include "graph/graph.h"
#include "runtime/registry.h"

namespace scion::tests {

// The in-tree plugins only.
inline const runtime::PluginRegistry& in_tree_registry() {
  static runtime::PluginRegistry reg = [] {
    runtime::PluginRegistry r;
    r.scan({SCION_PLUGIN_DIR});
    return r;
  }();
  return reg;
}

#ifdef SCION_TEST_PLUGINS
// The in-tree plugins and the testing plugins (tests/runtime/plugins/good).
inline const runtime::PluginRegistry& registry() {
  static runtime::PluginRegistry reg = [] {
    runtime::PluginRegistry r;
    r.scan({SCION_PLUGIN_DIR, std::string(SCION_TEST_PLUGINS) + "/good"});
    return r;
  }();
  return reg;
}

// Runs the graph `text` (named g.toml in messages) on one thread into `out`.
inline void run_graph(const std::string& text, const std::filesystem::path& out,
                      const std::vector<std::string>& overrides = {}, bool resume = false) {
  runtime::RunOptions o;
  o.out_dir = out.string();
  o.progress = 0;
  o.threads = 1;
  o.resume = resume;
  runtime::Executor ex(runtime::load_graph("g.toml", text, overrides, registry()), registry(), o);
  ex.run();
}

// The message validation gives for `text`, or "" when it validates.
inline std::string graph_error(const std::string& text) {
  try {
    runtime::load_graph("g.toml", text, {}, registry());
  } catch (const runtime::GraphError& e) {
    return e.what();
  }
  return "";
}

#endif  // SCION_TEST_PLUGINS

}  // namespace scion::tests
