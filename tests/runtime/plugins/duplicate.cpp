// Defines "test.mse" again, which the testing library already defines.
#include "scion/plugin.h"

namespace {
scion::PluginEntry dup_entry() {
  scion::PluginEntry e;
  e.name = "test.mse";
  e.kind = scion::PluginKind::loss;
  e.version = "9.9.9";
  e.description = "a duplicate";
  return e;
}
}  // namespace
SCION_REGISTER_PLUGIN(dup_entry)
SCION_PLUGIN_LIBRARY()
