// The memory plugin library: loss.trime, data.segments, memory.datastore and eval.knnlm
// (`scion plugins` lists them).
#include "scion/plugin.h"

SCION_PLUGIN_LIBRARY()
