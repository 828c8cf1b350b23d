// The language-model plugin library: tokenizers, data sources, GPT-2 and BERT models, LM
// losses and perplexity, growth ops (`scion plugins` lists them; loss.inherit lives in
// plugins/inherit's own library).
#include "scion/plugin.h"

SCION_PLUGIN_LIBRARY()
