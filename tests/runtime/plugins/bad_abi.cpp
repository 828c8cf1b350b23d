// A plugin library that claims another SDK ABI major version: the loader must refuse it
// before calling any of its C++.
#include "scion/plugin.h"

namespace scion {
static const std::vector<PluginEntry>* no_entries() {
  static std::vector<PluginEntry> e;
  return &e;
}
extern "C" BOOST_SYMBOL_EXPORT const PluginLibraryHeader bad_header;
const PluginLibraryHeader bad_header = {kPluginMagic, 99, 0, SCION_BUILD_FINGERPRINT, &no_entries};
}  // namespace scion
BOOST_DLL_ALIAS(scion::bad_header, scion_plugin_header)
