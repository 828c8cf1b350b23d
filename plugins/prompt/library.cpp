// The prompt plugin library: prompt.domain and prompt.tuning (`scion plugins` lists them).
#include "scion/plugin.h"

SCION_PLUGIN_LIBRARY()
