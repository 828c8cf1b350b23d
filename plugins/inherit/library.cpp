// The knowledge-inheritance plugin library: loss.inherit (`scion plugins loss.inherit`).
#include "scion/plugin.h"

SCION_PLUGIN_LIBRARY()
