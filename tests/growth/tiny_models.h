// The tiny GPT, BERT and Llama the growth and surgery tests share, and a scrambler that randomises
// every parameter (LayerNorms included) so that nothing is preserved by accident.
#pragma once
#include <string>

#include "lm_nodes.h"
#include "scion/autograd.h"

namespace scion::tiny {

inline lm::DecoderConfig gpt_cfg() {
  lm::DecoderConfig c;
  c.vocab = 37;
  c.context = 12;
  c.layers = 3;
  c.width = 16;
  c.heads = 4;
  c.seed = 3;
  return c;
}
inline lm::BertConfig bert_cfg() {
  lm::BertConfig c;
  c.vocab = 41;
  c.context = 12;
  c.layers = 2;
  c.width = 16;
  c.heads = 4;
  c.seed = 5;
  return c;
}

// A grouped-query Llama: 4 query heads on 2 key/value heads of size 4, Qwen2's q/k/v biases,
// an untied head.
inline lm::DecoderConfig llama_cfg() {
  lm::DecoderConfig c = lm::DecoderConfig::of_family("llama");
  c.vocab = 37;
  c.context = 12;
  c.layers = 3;
  c.width = 16;
  c.heads = 4;
  c.kv_heads = 2;
  c.ffn = 24;
  c.qkv_bias = true;
  c.seed = 4;
  return c;
}

inline void scramble(nn::Module& m, uint64_t seed, float std = 0.2f) {
  NoGradGuard g;
  uint64_t k = 0;
  for (auto& [n, t] : m.named_parameters()) {
    const bool ln = n.find("ln_") != std::string::npos || n.find("LayerNorm") != std::string::npos ||
                    n.find("norm.") != std::string::npos || n.find("layernorm") != std::string::npos;
    t.copy_(ln ? Tensor::rand(t.shape(), seed + k++, 0.5f, 1.5f) : Tensor::randn(t.shape(), seed + k++, 0.f, std));
  }
}

}  // namespace scion::tiny
