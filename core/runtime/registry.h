// Finds, loads and checks plugin libraries (Boost.DLL), and makes plugin instances.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "scion/plugin.h"

namespace boost::dll {
class shared_library;
}

namespace scion::runtime {

struct LoadedPlugin {
  // Declared first so that it is destroyed last: the entry's factory is code of the library.
  std::shared_ptr<boost::dll::shared_library> lib;
  PluginEntry entry;
  std::string library;  // path of the shared library
};

class PluginRegistry {
 public:
  // Loads one library. Throws scion::Error naming the file when it is missing, is not a
  // Scion plugin (no entry point), was built for another SDK ABI or toolchain, or defines a
  // plugin name that an already loaded library defines (naming both files).
  void load_library(const std::string& path);
  // Loads every lib*.so in each folder (missing folders are skipped); a library that fails
  // is refused and its error kept in problems().
  void scan(const std::vector<std::string>& dirs);
  const std::vector<std::string>& problems() const { return problems_; }

  const LoadedPlugin* find(const std::string& name) const;
  std::vector<std::string> names() const;
  // A new instance; the instance keeps its library loaded for as long as it lives.
  std::shared_ptr<Plugin> create(const std::string& name, const Params& params, const NodeResolver& resolver) const;

 private:
  std::map<std::string, LoadedPlugin> plugins_;
  std::vector<std::string> problems_;
};

// The folders searched, in order: `extra` (--plugin-dir), each folder of
// $SCION_PLUGIN_PATH (colon-separated), `build_dir` (empty for none), then this Scion's own
// plugin folders (runtime/install.h: <prefix>/lib/scion/plugins, and a build tree's
// <prefix>/plugins). Each folder appears once. A plugin name is taken from the first
// library that defines it; a later one is refused (PluginRegistry::scan's problems).
std::vector<std::string> plugin_search_path(const std::vector<std::string>& extra, const std::string& build_dir = "");
// The folders of $SCION_PLUGIN_PATH, in order (empty when unset).
std::vector<std::string> env_plugin_dirs();

}  // namespace scion::runtime
