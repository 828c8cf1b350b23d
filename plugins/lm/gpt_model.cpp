#include "gpt_model.h"

#include <string>

#include "scion/random.h"

namespace scion::lm {

GptModel::GptModel(const GptConfig& c) : cfg_(c) {
  SCION_CHECK(c.vocab > 0 && c.context > 0 && c.layers >= 0 && c.width > 0, "model.gpt: vocab, context and width must be "
              "positive and layers >= 0 (got vocab=", c.vocab, " context=", c.context, " layers=", c.layers,
              " width=", c.width, ")");
  c.check("model.gpt");
  if (cfg_.ffn == 0) cfg_.ffn = 4 * c.width;
  wte = register_module("transformer.wte", std::make_shared<nn::Embedding>(c.vocab, c.width, nn::InitConfig{derive_seed(c.seed, 1), 0.02f}));
  wpe = register_module("transformer.wpe", std::make_shared<nn::Embedding>(c.context, c.width, nn::InitConfig{derive_seed(c.seed, 2), 0.01f}));
  for (int64_t i = 0; i < c.layers; ++i) {
    nn::BlockConfig b;
    b.width = c.width;
    b.heads = cfg_.heads_at(i);
    b.head_size = cfg_.head_dim();
    b.ffn = cfg_.ffn_at(i);
    b.style = nn::BlockStyle::gpt2;
    b.causal = true;
    b.dropout = c.dropout;
    b.ln_eps = c.ln_eps;
    b.init = {derive_seed(c.seed, 100 + uint64_t(i)), 0.02f};
    b.layers_for_init = c.layers;
    blocks.push_back(register_module("transformer.h." + std::to_string(i), std::make_shared<nn::TransformerBlock>(b)));
  }
  ln_f = register_module("transformer.ln_f", std::make_shared<nn::LayerNorm>(c.width, c.ln_eps));
  if (!c.tied)
    lm_head = register_module("lm_head", std::make_shared<nn::Linear>(c.width, c.vocab, false, false,
                                                                      nn::InitConfig{derive_seed(c.seed, 3), 0.02f}));
}

Tensor GptModel::stream_gated(const Tensor& x) const {
  return ln_f->kept_gate.defined() ? ops::mul(x, ln_f->kept_gate) : x;
}

Tensor GptModel::hidden(const Tensor& ids, uint64_t dropout_seed, int64_t max_layers,
                        std::vector<Tensor>* layer_states, Tensor* last_ffn_input) const {
  SCION_CHECK(ids.defined() && ids.dim() == 2, "model.gpt: tokens must be [B, T], got ", ids.desc());
  const int64_t T = ids.size(1);
  SCION_CHECK(T <= cfg_.context, "model.gpt: sequence length ", T, " exceeds the context of ", cfg_.context,
              " positions (tokens ", ids.desc(), ")");
  Tensor pos = Tensor::arange(T, DType::i64, ids.device());
  Tensor x = stream_gated(ops::add(wte->forward(ids), wpe->forward(pos)));
  if (training_ && cfg_.dropout > 0.f) x = ops::dropout(x, cfg_.dropout, derive_seed(dropout_seed, 0));
  const size_t n = max_layers < 0 ? blocks.size() : std::min(blocks.size(), size_t(max_layers));
  for (size_t i = 0; i < n; ++i) {
    x = blocks[i]->forward(x, Tensor(), derive_seed(dropout_seed, 1 + i), i + 1 == n ? last_ffn_input : nullptr);
    if (layer_states) layer_states->push_back(x);
  }
  return ln_f->forward(x);
}

Tensor GptModel::hidden_with_prompt(const Tensor& ids, const Tensor& prompt, uint64_t dropout_seed) const {
  SCION_CHECK(ids.defined() && ids.dim() == 2 && prompt.dim() == 3 && prompt.size(0) == ids.size(0) &&
                  prompt.size(2) == cfg_.width,
              "model.gpt: a prompt [B, k, ", cfg_.width, "] for tokens [B, T] expected, got ", prompt.desc(), " and ",
              ids.desc());
  const int64_t k = prompt.size(1), T = ids.size(1);
  SCION_CHECK(k + T <= cfg_.context, "model.gpt: a prompt of ", k, " and ", T, " tokens exceed the context of ",
              cfg_.context, " positions");
  Tensor x = stream_gated(
      ops::add(ops::concat({prompt, wte->forward(ids)}, 1), wpe->forward(Tensor::arange(k + T, DType::i64, ids.device()))));
  if (training_ && cfg_.dropout > 0.f) x = ops::dropout(x, cfg_.dropout, derive_seed(dropout_seed, 0));
  for (size_t i = 0; i < blocks.size(); ++i) x = blocks[i]->forward(x, Tensor(), derive_seed(dropout_seed, 1 + i));
  return ln_f->forward(ops::split(x, {k, T}, 1)[1]);
}

Tensor GptModel::logits_from_hidden(const Tensor& h) const {
  if (lm_head) return lm_head->forward(h);
  return ops::matmul(h, wte->weight, false, true);  // tied: h · wte^T, one GEMM over all rows
}

Tensor GptModel::forward(const Tensor& ids, uint64_t dropout_seed) const {
  return logits_from_hidden(hidden(ids, dropout_seed));
}

void GptModel::load_hf_state_dict(const nn::NamedTensors& state) {
  nn::NamedTensors fixed;
  for (const auto& [name, t] : state) {
    if (name == "lm_head.weight" && cfg_.tied) continue;  // the tied copy of wte
    if (name.find(".attn.bias") != std::string::npos || name.find(".attn.masked_bias") != std::string::npos)
      continue;  // HF's causal-mask buffers, not parameters
    const bool has_prefix = name.rfind("transformer.", 0) == 0 || name.rfind("lm_head.", 0) == 0;
    fixed.emplace_back(has_prefix ? name : "transformer." + name, t);
  }
  load_state_dict(fixed, /*strict=*/true);
}

std::vector<nn::LayerNorm*> GptModel::hidden_norms() const {
  std::vector<nn::LayerNorm*> out;
  for (const auto& b : blocks)
    for (const auto& ln : {b->ln_1, b->ln_2})
      if (ln) out.push_back(ln.get());
  out.push_back(ln_f.get());
  return out;
}

}  // namespace scion::lm
