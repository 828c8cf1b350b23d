// Self-attention, MLP and transformer blocks in GPT-2 (pre-LN) and BERT (post-LN) form,
// named as their Hugging Face twins name them.
#include <cmath>

#include "scion/nn.h"
#include "scion/random.h"

namespace scion::nn {

namespace {
InitConfig child_init(const InitConfig& base, uint64_t salt, float std) {
  return {derive_seed(base.seed, salt), std};
}
// y [B, T, H*D] with head h scaled by mask[h].
Tensor mask_heads(const Tensor& y, const Tensor& mask, int64_t heads) {
  const int64_t B = y.size(0), T = y.size(1), C = y.size(2);
  return ops::mul(y.view({B, T, heads, C / heads}), mask.view({heads, 1})).view({B, T, C});
}
float residual_std(const BlockConfig& c) {
  // GPT-2 scales the projections that write into the residual stream by 1/sqrt(2 * layers).
  return c.style == BlockStyle::gpt2 ? c.init.std / std::sqrt(2.f * float(c.layers_for_init)) : c.init.std;
}
}  // namespace

SelfAttention::SelfAttention(const BlockConfig& c) : cfg(c) {
  SCION_CHECK(c.heads > 0 && c.width % c.heads == 0, "attention: width ", c.width, " is not divisible by ",
              c.heads, " heads");
  const int64_t C = c.width;
  if (c.style == BlockStyle::gpt2) {
    c_attn = register_module("c_attn", std::make_shared<Linear>(C, 3 * C, true, true, child_init(c.init, 1, c.init.std)));
    c_proj = register_module("c_proj", std::make_shared<Linear>(C, C, true, true, child_init(c.init, 2, residual_std(c))));
  } else {
    query = register_module("self.query", std::make_shared<Linear>(C, C, true, false, child_init(c.init, 3, c.init.std)));
    key = register_module("self.key", std::make_shared<Linear>(C, C, true, false, child_init(c.init, 4, c.init.std)));
    value = register_module("self.value", std::make_shared<Linear>(C, C, true, false, child_init(c.init, 5, c.init.std)));
    out_dense = register_module("output.dense", std::make_shared<Linear>(C, C, true, false, child_init(c.init, 6, c.init.std)));
  }
}

Tensor SelfAttention::forward(const Tensor& x, const Tensor& key_padding_mask, uint64_t dropout_seed) const {
  const int64_t C = cfg.width;
  Tensor y;
  if (cfg.style == BlockStyle::gpt2) {
    Tensor qkv = c_attn->forward(x);  // [B, T, 3C]; q, k, v are strided views into it
    y = ops::attention(qkv.narrow(2, 0, C), qkv.narrow(2, C, C), qkv.narrow(2, 2 * C, C), cfg.heads, cfg.causal,
                       key_padding_mask);
    if (head_mask.defined()) y = mask_heads(y, head_mask, cfg.heads);
    y = c_proj->forward(y);
  } else {
    y = ops::attention(query->forward(x), key->forward(x), value->forward(x), cfg.heads, cfg.causal,
                       key_padding_mask);
    if (head_mask.defined()) y = mask_heads(y, head_mask, cfg.heads);
    y = out_dense->forward(y);
  }
  if (training_ && cfg.dropout > 0.f) y = ops::dropout(y, cfg.dropout, dropout_seed);
  return y;
}

Mlp::Mlp(const BlockConfig& c) : cfg(c) {
  const bool gpt = c.style == BlockStyle::gpt2;
  fc = register_module(gpt ? "c_fc" : "intermediate.dense",
                       std::make_shared<Linear>(c.width, c.ffn, true, gpt, child_init(c.init, 7, c.init.std)));
  proj = register_module(gpt ? "c_proj" : "output.dense",
                         std::make_shared<Linear>(c.ffn, c.width, true, gpt, child_init(c.init, 8, residual_std(c))));
}

Tensor Mlp::forward(const Tensor& x) const {
  Tensor h = ops::gelu(fc->forward(x));
  if (unit_mask.defined()) h = ops::mul(h, unit_mask);  // [.., F] * [F]
  return proj->forward(h);
}

TransformerBlock::TransformerBlock(const BlockConfig& c) : cfg(c) {
  if (c.style == BlockStyle::gpt2) {
    ln_1 = register_module("ln_1", std::make_shared<LayerNorm>(c.width, c.ln_eps));
    attn = register_module("attn", std::make_shared<SelfAttention>(c));
    ln_2 = register_module("ln_2", std::make_shared<LayerNorm>(c.width, c.ln_eps));
    mlp = register_module("mlp", std::make_shared<Mlp>(c));
  } else {
    attn = register_module("attention", std::make_shared<SelfAttention>(c));
    ln_1 = register_module("attention.output.LayerNorm", std::make_shared<LayerNorm>(c.width, c.ln_eps));
    mlp = register_module("", std::make_shared<Mlp>(c));
    ln_2 = register_module("output.LayerNorm", std::make_shared<LayerNorm>(c.width, c.ln_eps));
  }
}

Tensor TransformerBlock::forward(const Tensor& x, const Tensor& key_padding_mask, uint64_t dropout_seed) const {
  const bool drop = training_ && cfg.dropout > 0.f;
  if (cfg.style == BlockStyle::gpt2) {
    Tensor a = attn->forward(ln_1->forward(x), key_padding_mask, derive_seed(dropout_seed, 1));
    if (layer_gate.defined()) a = ops::mul(a, layer_gate);
    Tensor h = ops::add(x, a);
    Tensor m = mlp->forward(ln_2->forward(h));
    if (drop) m = ops::dropout(m, cfg.dropout, derive_seed(dropout_seed, 2));
    if (layer_gate.defined()) m = ops::mul(m, layer_gate);
    return ops::add(h, m);
  }
  Tensor h = ln_1->forward(ops::add(x, attn->forward(x, key_padding_mask, derive_seed(dropout_seed, 1))));
  Tensor m = mlp->forward(h);
  if (drop) m = ops::dropout(m, cfg.dropout, derive_seed(dropout_seed, 2));
  Tensor y = ln_2->forward(ops::add(h, m));
  if (!layer_gate.defined()) return y;
  // gate * y + (1 - gate) * x: exactly x at gate 0, exactly y at gate 1.
  return ops::add(ops::mul(y, layer_gate), ops::mul(x, ops::add_scalar(ops::neg(layer_gate), 1.f)));
}

}  // namespace scion::nn
