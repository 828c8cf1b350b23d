// GPT-2 as an nn::Module, with Hugging Face GPT2LMHeadModel's parameter names and layouts
// (transformer.wte, transformer.wpe, transformer.h.{i}.*, transformer.ln_f; Conv1D weights
// stored [in, out]); the output head is tied to wte unless `tied = false`.
#pragma once
#include <memory>
#include <vector>

#include "layer_sizes.h"
#include "scion/nn.h"

namespace scion::lm {

struct GptConfig : LayerSizes {
  int64_t vocab = 50257;
  int64_t context = 1024;
  float dropout = 0.f;
  float ln_eps = 1e-5f;
  bool tied = true;
  uint64_t seed = 0;
};

class GptModel : public nn::Module {
 public:
  explicit GptModel(const GptConfig& cfg);
  // ids [B, T] (i64/i32) -> final hidden states [B, T, C] (after ln_f). `max_layers` >= 0
  // runs only the bottom blocks (a prefix sub-model sharing embeddings and head).
  // `layer_states`, when given, receives each block's output (the residual stream, before
  // ln_f), for layerwise distillation. `last_ffn_input`, when given, receives the last block
  // run's FFN input (after its ln_2, [B, T, C]; undefined when that block has no FFN):
  // TRIME's and kNN-LM's representation.
  Tensor hidden(const Tensor& ids, uint64_t dropout_seed = 0, int64_t max_layers = -1,
                std::vector<Tensor>* layer_states = nullptr, Tensor* last_ffn_input = nullptr) const;
  // ids [B, T] -> logits [B, T, V]
  Tensor forward(const Tensor& ids, uint64_t dropout_seed = 0) const;
  Tensor logits_from_hidden(const Tensor& h) const;
  // The head's weight [V, C]: wte when tied, else lm_head's.
  const Tensor& head_weight() const { return lm_head ? lm_head->weight : wte->weight; }
  // Prompt tuning: `prompt` [B, k, C] is prepended to the token embeddings (positions 0..k-1,
  // the tokens after them); the hidden states of the token positions only, [B, T, C].
  Tensor hidden_with_prompt(const Tensor& ids, const Tensor& prompt, uint64_t dropout_seed = 0) const;
  // Accepts Hugging Face Hub naming too: keys without the "transformer." prefix, and an
  // "lm_head.weight" that equals the tied wte (ignored when tied).
  void load_hf_state_dict(const nn::NamedTensors& state);
  const GptConfig& config() const { return cfg_; }

  std::vector<std::shared_ptr<nn::TransformerBlock>>& block_list() { return blocks; }
  // Every LayerNorm over the residual width (the hidden gate's users).
  std::vector<nn::LayerNorm*> hidden_norms() const;

  // The embeddings multiplied by CoFi's hidden gate (the LayerNorms' kept_gate), when it is
  // set: the residual stream is z ⊙ (...), as in CoFi's reference.
  Tensor stream_gated(const Tensor& x) const;

  std::shared_ptr<nn::Embedding> wte, wpe;
  std::vector<std::shared_ptr<nn::TransformerBlock>> blocks;
  std::shared_ptr<nn::LayerNorm> ln_f;
  std::shared_ptr<nn::Linear> lm_head;  // only when untied

 private:
  GptConfig cfg_;
};

}  // namespace scion::lm
