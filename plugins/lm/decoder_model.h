// The decoder-only language model, one class for its families (nn::transformer_names):
//  * gpt2: GPT2LMHeadModel (transformer.wte, transformer.wpe, transformer.h.{i}.*,
//    transformer.ln_f; Conv1D weights [in, out]; LayerNorm, GELU, learned positions);
//  * llama: LlamaForCausalLM and its kin Qwen2 and Mistral (model.embed_tokens,
//    model.layers.{i}.*, model.norm; RMSNorm, SwiGLU, rotary positions, grouped key/value
//    heads, per-projection biases).
// The output head is tied to the token embedding unless `tied = false` (lm_head.weight).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "layer_sizes.h"
#include "scion/nn.h"

namespace scion::lm {

struct DecoderConfig : LayerSizes {
  std::string family = "gpt2";  // gpt2 | llama
  int64_t vocab = 50257;
  int64_t context = 1024;
  float dropout = 0.f;
  double norm_eps = 1e-5;       // LayerNorm's eps (gpt2) or RMSNorm's (llama: rms_norm_eps)
  bool tied = true;
  uint64_t seed = 0;
  // llama: rotary positions (rope_theta, Llama 3's rope_scaling) and per-projection biases
  // (Llama's attention_bias sets q, k, v and o; Qwen2 has q, k, v only; mlp_bias).
  double rope_theta = 10000.0;
  std::optional<ops::Llama3RopeScaling> rope_scaling;
  bool qkv_bias = true, o_bias = true, mlp_bias = true;
  // The Hugging Face architecture and the config.json fields Scion does not use (token ids,
  // dtype), kept from a loaded directory so an export says what it said (hf_config.h). JSON
  // text; may be empty.
  std::string hf_architecture, hf_extra;

  // GPT-2's defaults, or Llama's (RMSNorm eps 1e-6, no biases, untied head).
  static DecoderConfig of_family(const std::string& family);
  // The block description of layer `l`.
  nn::BlockConfig block(int64_t l) const;
};

class DecoderModel : public nn::Module {
 public:
  explicit DecoderModel(const DecoderConfig& cfg);
  // ids [B, T] (i64/i32) -> final hidden states [B, T, C] (after the final norm). `max_layers`
  // >= 0 runs only the bottom blocks (a prefix sub-model sharing embeddings and head).
  // `layer_states`, when given, receives each block's output (the residual stream, before
  // the final norm), for layerwise distillation. `last_ffn_input`, when given, receives the
  // last block run's FFN input (after its FFN norm, [B, T, C]; undefined when that block has
  // no FFN): TRIME's and kNN-LM's representation.
  Tensor hidden(const Tensor& ids, uint64_t dropout_seed = 0, int64_t max_layers = -1,
                std::vector<Tensor>* layer_states = nullptr, Tensor* last_ffn_input = nullptr) const;
  // ids [B, T] -> logits [B, T, V]
  Tensor forward(const Tensor& ids, uint64_t dropout_seed = 0) const;
  Tensor logits_from_hidden(const Tensor& h) const;
  // The head's weight [V, C]: the token embedding when tied, else lm_head's.
  const Tensor& head_weight() const { return lm_head ? lm_head->weight : wte->weight; }
  // Prompt tuning: `prompt` [B, k, C] is prepended to the token embeddings (positions 0..k-1,
  // the tokens after them); the hidden states of the token positions only, [B, T, C].
  Tensor hidden_with_prompt(const Tensor& ids, const Tensor& prompt, uint64_t dropout_seed = 0) const;
  // Loads a Hugging Face state dict: GPT-2 Hub files without the "transformer." prefix, a
  // tied copy of the embedding as "lm_head.weight" (ignored when tied), and buffers that are
  // not parameters (GPT-2's attention masks, rotary_emb.inv_freq) are accepted.
  void load_hf_state_dict(const nn::NamedTensors& state);
  const DecoderConfig& config() const { return cfg_; }

  std::vector<std::shared_ptr<nn::TransformerBlock>>& block_list() { return blocks; }
  // Every norm over the residual width (the hidden gate's users).
  std::vector<nn::Norm*> hidden_norms() const;

  // The embeddings multiplied by CoFi's hidden gate (the norms' kept_gate), when it is set:
  // the residual stream is z ⊙ (...), as in CoFi's reference.
  Tensor stream_gated(const Tensor& x) const;

  std::shared_ptr<nn::Embedding> wte, wpe;  // wpe: learned positions only
  std::vector<std::shared_ptr<nn::TransformerBlock>> blocks;
  std::shared_ptr<nn::Norm> ln_f;
  std::shared_ptr<nn::Linear> lm_head;  // only when untied

 private:
  // Token (and learned position) embeddings of positions 0..T-1 of `x` ([B, T, C] rows after
  // a prompt), then the blocks; the rotary tables when the family rotates.
  Tensor run_blocks(Tensor x, uint64_t dropout_seed, size_t n, std::vector<Tensor>* layer_states,
                    Tensor* last_ffn_input) const;
  const ops::RopeTables* rope(int64_t positions, Device device) const;
  DecoderConfig cfg_;
  // Rotary cos/sin for the longest sequence seen (shorter ones read a prefix): made once, not
  // per step.
  mutable ops::RopeTables rope_;
};

}  // namespace scion::lm
