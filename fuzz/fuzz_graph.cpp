// libFuzzer target: graph files as `scion validate` reads them (TOML syntax, the schema of
// every in-tree plugin, ports, stages, the plugins' graph checks) with --set overrides. The
// input is the graph's TOML, a "\n----\n" line, then one override per line. GraphError (the
// located diagnostics) is the expected refusal; validation creates no node and writes
// nothing, so any other exception is a finding as well as a crash or a sanitizer report.
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_input.h"
#include "graph/graph.h"
#include "runtime/registry.h"

using namespace scion::runtime;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const PluginRegistry* reg = [] {
    auto* r = new PluginRegistry;
    r->scan({SCION_FUZZ_PLUGIN_DIR});
    if (r->names().empty()) ::abort();  // no plugins: the target would fuzz nothing
    return r;
  }();
  const auto parts = scion::fuzz::split_parts(data, size, 2);
  std::vector<std::string> sets;
  std::string_view rest = parts[1];
  while (!rest.empty() && sets.size() < 8) {
    const size_t nl = rest.find('\n');
    sets.emplace_back(rest.substr(0, nl));
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
  }
  try {
    (void)load_graph("fuzz.toml", std::string(parts[0]), sets, *reg);
  } catch (const GraphError& e) {
    if (e.diagnostics().empty()) ::abort();  // a refusal must say why
  }
  return 0;
}
