// The lifelong plugin library: data.domains, elle.expand and eval.lifelong (`scion plugins`
// lists them).
#include "scion/plugin.h"

SCION_PLUGIN_LIBRARY()
