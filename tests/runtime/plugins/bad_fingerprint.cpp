// A plugin library with the host's ABI version but another build fingerprint (here: built
// against a Scion of another CUDA major): the loader must refuse it before calling any C++.
#include "scion/plugin.h"

namespace scion {
static const std::vector<PluginEntry>* no_entries() {
  static std::vector<PluginEntry> e;
  return &e;
}
extern "C" BOOST_SYMBOL_EXPORT const PluginLibraryHeader bad_fingerprint_header;
const PluginLibraryHeader bad_fingerprint_header = {kPluginMagic, kSdkAbiMajor, kSdkAbiMinor,
                                                    SCION_COMPILER_TAG ";" SCION_STDLIB_TAG ";cuda-99", &no_entries};
}  // namespace scion
BOOST_DLL_ALIAS(scion::bad_fingerprint_header, scion_plugin_header)
