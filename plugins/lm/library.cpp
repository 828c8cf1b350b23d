// The language-model plugin library: tokenizers, data sources, GPT-2 and BERT models, LM
// losses and perplexity, knowledge inheritance (`scion plugins` lists them).
#include "scion/plugin.h"

SCION_PLUGIN_LIBRARY()
