// A plugin library whose header has the host's ABI but no build fingerprint (a null pointer):
// the loader must refuse it with a message, and a scan must go on with the other libraries.
#include "scion/plugin.h"

namespace scion {
static const std::vector<PluginEntry>* no_entries() {
  static std::vector<PluginEntry> e;
  return &e;
}
extern "C" BOOST_SYMBOL_EXPORT const PluginLibraryHeader null_fingerprint_header;
const PluginLibraryHeader null_fingerprint_header = {kPluginMagic, kSdkAbiMajor, kSdkAbiMinor, nullptr, &no_entries};
}  // namespace scion
BOOST_DLL_ALIAS(scion::null_fingerprint_header, scion_plugin_header)
