// Hugging Face config.json <-> the config JSON of Scion's model nodes (model.gpt, model.bert,
// model.llama), both ways, as pure functions. The tensors need no mapping: Scion's parameter
// names are the Hugging Face names. What Scion does not compute exactly as transformers would
// (another activation, a sliding window, a rope scaling other than Llama 3's, ...) is refused
// with the field, its value and what Scion accepts, so a loaded model is the model the file
// describes. Fields that change nothing Scion computes (token ids, torch_dtype, dropout rates,
// initializer_range, ...) ride along in the config's "hf_extra" object and are written back
// on export. docs/hugging-face.md has the table.
#pragma once
#include <string>
#include <vector>

#include "scion/json.h"

namespace scion::lm {

// The architectures (config.json "architectures"[0]) read and written.
const std::vector<std::string>& hf_supported_architectures();
// Those one model plugin ("model.llama") loads: its PluginEntry::hf_architectures.
std::vector<std::string> hf_architectures_of(const std::string& plugin);

struct HfImportOptions {
  // BERT files with hidden_act "gelu" (the exact erf GELU, e.g. bert-base-uncased): Scion's
  // BERT computes the tanh approximation ("gelu_new"), within about 1e-3 of it. Refused unless
  // this is set.
  bool approximate_gelu = false;
};

struct HfImported {
  std::string plugin;  // "model.gpt", "model.bert", "model.llama"
  Json config;         // that node's config JSON (what Model::config() writes into checkpoints)
};

// A config.json mapped to the Scion plugin and config; `source` names the file in errors
// (scion::Error).
HfImported scion_config_from_hf(const Json& hf_config, const std::string& source = "config.json",
                                const HfImportOptions& options = {});

// A Scion model's config (Model::config()) as the config.json of its Hugging Face family:
// what the model nodes' Model::hf_config() returns. Refuses a plugin without a Hugging Face
// family, per-layer sizes (pruned models: config.json has one size for all layers), and
// choices the family's config cannot express.
Json hf_config_for(const std::string& plugin, const Json& scion_config);
// The same by the transformer family's name (nn::TransformerNames: "gpt2", "bert", "llama").
Json hf_config_for_family(const std::string& family, const Json& scion_config);

}  // namespace scion::lm
