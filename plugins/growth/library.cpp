// The growth plugin library: grow.net2wider, grow.net2deeper, grow.stack, grow.gstack, grow.hyperclone, grow.bert2bert,
// grow.masked and grow.subnets (`scion plugins` lists them).
#include "scion/plugin.h"

SCION_PLUGIN_LIBRARY()
