#include "runtime/install.h"

#include <boost/dll/runtime_symbol_info.hpp>
#include <filesystem>

// The layout relative to the prefix, from CMake (SCION_INSTALL_*DIR); these defaults are
// the ones CMake uses too.
#ifndef SCION_INSTALL_LIBDIR
#define SCION_INSTALL_LIBDIR "lib"
#endif
#ifndef SCION_INSTALL_PLUGINDIR
#define SCION_INSTALL_PLUGINDIR "lib/scion/plugins"
#endif
#ifndef SCION_INSTALL_DATADIR
#define SCION_INSTALL_DATADIR "share/scion"
#endif

namespace scion::runtime {

namespace fs = std::filesystem;

std::string install_prefix() {
  // This function's own library: libscion_core, wherever the dynamic loader found it.
  static const std::string prefix = [] {
    fs::path lib = fs::path(boost::dll::this_line_location().string()).parent_path();
    std::error_code ec;
    if (fs::path c = fs::weakly_canonical(lib, ec); !ec) lib = c;
    // Strip as many trailing components as the library folder has ("lib", or
    // "lib/x86_64-linux-gnu" with a multiarch libdir).
    for (const auto& part : fs::path(SCION_INSTALL_LIBDIR)) {
      (void)part;
      lib = lib.parent_path();
    }
    return lib.string();
  }();
  return prefix;
}

std::vector<std::string> default_plugin_dirs() {
  const fs::path p = install_prefix();
  std::error_code ec;
  const bool installed = fs::is_directory(p / SCION_INSTALL_PLUGINDIR, ec), built = fs::is_directory(p / "plugins", ec);
  std::vector<std::string> out;
  if (installed || !built) out.push_back((p / SCION_INSTALL_PLUGINDIR).string());
  if (built) out.push_back((p / "plugins").string());
  return out;
}

std::string data_dir() { return (fs::path(install_prefix()) / SCION_INSTALL_DATADIR).string(); }

}  // namespace scion::runtime
