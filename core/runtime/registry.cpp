#include "runtime/registry.h"

#include "runtime/install.h"

#include <boost/dll/shared_library.hpp>
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace scion::runtime {

namespace fs = std::filesystem;

namespace {
// A file that is no shared library (empty, text, truncated) would reach the loader, whose
// error for it is only an errno ("Bad file descriptor"): say what it is instead.
void check_is_shared_library(const std::string& path) {
  std::error_code ec;
  SCION_CHECK(fs::is_regular_file(path, ec), "plugin library '", path, "' is not a regular file");
  const auto size = fs::file_size(path, ec);
  SCION_CHECK(size > 0, "plugin library '", path, "' is empty (0 bytes), not a shared library (hint: rebuild it, or "
              "remove it from the plugin folder)");
  char magic[4] = {};
  std::ifstream(path, std::ios::binary).read(magic, sizeof magic);
  SCION_CHECK(std::string(magic, 4) == "\x7f" "ELF", "plugin library '", path, "' is not a shared library (", size,
              " bytes without an ELF header: a text file, or a truncated copy) (hint: rebuild it, or remove it from "
              "the plugin folder)");
}
}  // namespace

void PluginRegistry::load_library(const std::string& path) {
  if (!fs::exists(path)) throw Error("plugin library '" + path + "' does not exist");
  check_is_shared_library(path);
  auto lib = std::make_shared<boost::dll::shared_library>();
  boost::system::error_code ec;
  lib->load(path, ec, boost::dll::load_mode::rtld_lazy | boost::dll::load_mode::rtld_local);
  if (ec) throw Error("plugin library '" + path + "' cannot be loaded: " + ec.message());
  if (!lib->has("scion_plugin_header"))
    throw Error("'" + path + "' is not a Scion plugin library: it exports no 'scion_plugin_header' entry point "
                "(hint: end one source file of the plugin with SCION_PLUGIN_LIBRARY())");
  // Read the plain-C header before calling any C++ in the library.
  const PluginLibraryHeader& h = lib->get_alias<const PluginLibraryHeader>("scion_plugin_header");
  if (h.magic != kPluginMagic) throw Error("'" + path + "': the plugin header has the wrong magic number");
  if (h.abi_major != kSdkAbiMajor || h.abi_minor > kSdkAbiMinor) {
    std::ostringstream os;
    os << "'" << path << "' was built for Scion SDK ABI " << h.abi_major << "." << h.abi_minor << ", but this Scion has ABI "
       << kSdkAbiMajor << "." << kSdkAbiMinor << " (hint: rebuild the plugin against this SDK)";
    throw Error(os.str());
  }
  if (!h.fingerprint || !h.entries)
    throw Error("'" + path + "': the plugin header has no " + (h.fingerprint ? "entry list" : "build fingerprint") +
                " (hint: end one source file of the plugin with SCION_PLUGIN_LIBRARY(), which fills the header)");
  if (std::string(h.fingerprint) != SCION_BUILD_FINGERPRINT)
    throw Error("'" + path + "' was built with " + h.fingerprint + " but Scion with " + SCION_BUILD_FINGERPRINT +
                " (C++ objects cannot cross that boundary; rebuild the plugin with the same toolchain)");
  const std::vector<PluginEntry>* entries = h.entries();
  if (!entries) throw Error("'" + path + "': the plugin library's entry list is null");
  for (const PluginEntry& e : *entries) {
    auto it = plugins_.find(e.name);
    if (it != plugins_.end())
      throw Error("plugin '" + e.name + "' is defined twice: in '" + it->second.library + "' and in '" + path +
                  "' (remove one of them from the plugin path)");
  }
  for (const PluginEntry& e : *entries) plugins_[e.name] = LoadedPlugin{lib, e, path};
}

void PluginRegistry::scan(const std::vector<std::string>& dirs) {
  for (const std::string& d : dirs) {
    if (!fs::is_directory(d)) continue;
    std::vector<std::string> libs;
    for (const auto& f : fs::directory_iterator(d)) {
      const std::string n = f.path().filename().string();
      if (f.is_regular_file() && n.rfind("lib", 0) == 0 && f.path().extension() == ".so") libs.push_back(f.path().string());
    }
    std::sort(libs.begin(), libs.end());
    for (const auto& l : libs) {
      try {
        load_library(l);
      } catch (const std::exception& e) {  // one bad library never breaks the others
        problems_.push_back(e.what());
      }
    }
  }
}

const LoadedPlugin* PluginRegistry::find(const std::string& name) const {
  auto it = plugins_.find(name);
  return it == plugins_.end() ? nullptr : &it->second;
}

std::vector<std::string> PluginRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& [n, p] : plugins_) out.push_back(n);
  return out;
}

std::shared_ptr<Plugin> PluginRegistry::create(const std::string& name, const Params& params,
                                               const NodeResolver& resolver) const {
  const LoadedPlugin* p = find(name);
  if (!p) throw Error("no plugin named '" + name + "'");
  std::shared_ptr<Plugin> inner = p->entry.factory(params, resolver);
  if (!inner) throw Error("plugin '" + name + "' returned no object");
  // The outer handle's deleter (core code) destroys the object while its library is still
  // loaded, then lets go of the library.
  Plugin* raw = inner.get();
  auto lib = p->lib;
  return std::shared_ptr<Plugin>(raw, [inner = std::move(inner), lib = std::move(lib)](Plugin*) mutable {
    inner.reset();
    lib.reset();
  });
}

std::vector<std::string> env_plugin_dirs() {
  std::vector<std::string> dirs;
  if (const char* env = std::getenv("SCION_PLUGIN_PATH")) {
    std::stringstream ss(env);
    std::string d;
    while (std::getline(ss, d, ':'))
      if (!d.empty()) dirs.push_back(d);
  }
  return dirs;
}

std::vector<std::string> plugin_search_path(const std::vector<std::string>& extra, const std::string& build_dir) {
  // The first folder that defines a plugin name wins (a later definition is refused), so
  // what the user names comes before what this Scion ships.
  std::vector<std::string> dirs = extra;
  for (const auto& d : env_plugin_dirs()) dirs.push_back(d);
  if (!build_dir.empty()) dirs.push_back(build_dir);
  for (const auto& d : default_plugin_dirs()) dirs.push_back(d);
  // Keep the first occurrence of each folder.
  std::vector<std::string> out;
  for (const auto& d : dirs) {
    std::error_code ec;
    const std::string canon = fs::weakly_canonical(d, ec).string();
    bool seen = false;
    for (const auto& o : out) seen |= fs::weakly_canonical(o, ec).string() == canon;
    if (!seen) out.push_back(d);
  }
  return out;
}

}  // namespace scion::runtime
