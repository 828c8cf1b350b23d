// BERT (post-LN encoder with learned positions, token types and a padding mask) and its
// masked-LM head, named as Hugging Face's BertForMaskedLM names them: bert.embeddings.*,
// bert.encoder.layer.{i}.*, cls.predictions.transform.*, cls.predictions.bias; the decoder
// weight is tied to the word embeddings unless `tied = false` (then it is
// cls.predictions.decoder.weight, as growth operators need). The activation is GELU in its tanh form (Hugging
// Face's hidden_act = "gelu_new"); original BERT used the erf form.
#pragma once
#include <memory>
#include <vector>

#include "layer_sizes.h"
#include "scion/nn.h"

namespace scion::lm {

struct BertConfig : LayerSizes {
  int64_t vocab = 30522;
  int64_t context = 512;
  int64_t type_vocab = 2;
  float dropout = 0.f;
  float ln_eps = 1e-12f;
  bool tied = true;
  uint64_t seed = 0;
};

class BertModel : public nn::Module {
 public:
  explicit BertModel(const BertConfig& cfg);
  // ids [B, T]; token_types [B, T] or undefined (all 0); attention_mask u8 [B, T] (1 = real
  // token) or undefined. Returns the encoder output [B, T, C].
  // max_layers >= 0 runs only the bottom layers (a prefix sub-model sharing the MLM head).
  // `layer_states`, when given, receives each layer's output (for layerwise distillation).
  Tensor hidden(const Tensor& ids, const Tensor& token_types, const Tensor& attention_mask,
                uint64_t dropout_seed = 0, int64_t max_layers = -1,
                std::vector<Tensor>* layer_states = nullptr) const;
  // Prompt tuning: `prompt` [B, k, C] is prepended to the word embeddings (positions 0..k-1,
  // always attended); the encoder output of the token positions only, [B, T, C].
  Tensor hidden_with_prompt(const Tensor& ids, const Tensor& prompt, const Tensor& attention_mask,
                            uint64_t dropout_seed = 0) const;
  // MLM logits [B, T, V].
  Tensor forward(const Tensor& ids, const Tensor& token_types = Tensor(), const Tensor& attention_mask = Tensor(),
                 uint64_t dropout_seed = 0) const;
  Tensor mlm_logits(const Tensor& hidden) const;
  // What the MLM decoder reads: the prediction transform (dense, GELU, LayerNorm) of `hidden`.
  Tensor mlm_transform(const Tensor& hidden) const;
  const Tensor& decoder() const { return cfg_.tied ? word->weight : decoder_weight; }
  const BertConfig& config() const { return cfg_; }

  std::vector<std::shared_ptr<nn::TransformerBlock>>& block_list() { return layers; }
  // Every LayerNorm over the residual width (the hidden gate's users).
  std::vector<nn::Norm*> hidden_norms() const;

  // The summed embeddings multiplied by CoFi's hidden gate (the LayerNorms' kept_gate), when
  // it is set, before the embedding LayerNorm: CoFi's reference does the same.
  Tensor stream_gated(const Tensor& x) const;

  std::shared_ptr<nn::Embedding> word, position, token_type;
  std::shared_ptr<nn::Norm> emb_ln;
  std::vector<std::shared_ptr<nn::TransformerBlock>> layers;
  std::shared_ptr<nn::Linear> transform;
  std::shared_ptr<nn::Norm> transform_ln;
  Tensor decoder_bias;
  Tensor decoder_weight;  // only when untied: [vocab, width]

 private:
  BertConfig cfg_;
};

}  // namespace scion::lm
