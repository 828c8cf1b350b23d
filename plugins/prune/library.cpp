// The pruning plugin library: loss.cofi and op.cofi_prune (`scion plugins` lists them).
#include "scion/plugin.h"

SCION_PLUGIN_LIBRARY()
