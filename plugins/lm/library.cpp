// The language-model plugin library: tokenizers, data sources, GPT-2 and BERT models, LM
// losses and perplexity (`scion plugins` lists them; growth ops and loss.inherit are libraries
// of their own: plugins/growth, plugins/inherit).
#include "scion/plugin.h"

SCION_PLUGIN_LIBRARY()
