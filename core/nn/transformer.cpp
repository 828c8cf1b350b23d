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
// y [B, T, H*D] with head h scaled by gate[h].
Tensor gate_heads(const Tensor& y, const Tensor& gate, int64_t heads) {
  const int64_t B = y.size(0), T = y.size(1), C = y.size(2);
  return ops::mul(y.view({B, T, heads, C / heads}), gate.view({heads, 1})).view({B, T, C});
}
Tensor gated(const Tensor& y, const Tensor& gate) { return gate.defined() ? ops::mul(y, gate) : y; }
// A sublayer gate that is exactly 0 (a hard-concrete sample clamped to 0, a pruned sublayer).
bool closed(const Tensor& gate) { return gate.defined() && gate.numel() == 1 && gate.item() == 0.f; }
float residual_std(const BlockConfig& c) {
  // GPT-2 scales the projections that write into the residual stream by 1/sqrt(2 * layers).
  return c.style == BlockStyle::gpt2 ? c.init.std / std::sqrt(2.f * float(c.layers_for_init)) : c.init.std;
}
}  // namespace

SelfAttention::SelfAttention(const BlockConfig& c) : cfg(c) {
  SCION_CHECK(c.heads > 0 && (c.head_size > 0 || c.width % c.heads == 0), "attention: width ", c.width,
              " is not divisible by ", c.heads, " heads");
  // C in, A = heads * head size inside (equal to C unless heads were pruned or per-layer).
  const int64_t C = c.width, A = c.heads * c.head_dim();
  if (c.style == BlockStyle::gpt2) {
    c_attn = register_module("c_attn", std::make_shared<Linear>(C, 3 * A, true, true, child_init(c.init, 1, c.init.std)));
    c_proj = register_module("c_proj", std::make_shared<Linear>(A, C, true, true, child_init(c.init, 2, residual_std(c))));
  } else {
    query = register_module("self.query", std::make_shared<Linear>(C, A, true, false, child_init(c.init, 3, c.init.std)));
    key = register_module("self.key", std::make_shared<Linear>(C, A, true, false, child_init(c.init, 4, c.init.std)));
    value = register_module("self.value", std::make_shared<Linear>(C, A, true, false, child_init(c.init, 5, c.init.std)));
    out_dense = register_module("output.dense", std::make_shared<Linear>(A, C, true, false, child_init(c.init, 6, c.init.std)));
  }
  register_buffer("gate.head", &head_gate);
}

Tensor SelfAttention::forward(const Tensor& x, const Tensor& key_padding_mask, uint64_t dropout_seed) const {
  Tensor y;
  if (cfg.style == BlockStyle::gpt2) {
    Tensor qkv = c_attn->forward(x);  // [B, T, 3A]: q, k, v side by side, read in place
    y = ops::attention_packed(qkv, cfg.heads, cfg.causal, key_padding_mask);
    if (head_gate.defined()) y = gate_heads(y, head_gate, cfg.heads);
    y = c_proj->forward(y);
  } else {
    y = ops::attention(query->forward(x), key->forward(x), value->forward(x), cfg.heads, cfg.causal,
                       key_padding_mask);
    if (head_gate.defined()) y = gate_heads(y, head_gate, cfg.heads);
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
  register_buffer("gate.unit", &unit_gate);
}

Tensor Mlp::forward(const Tensor& x) const {
  Tensor h = ops::gelu(fc->forward(x));
  if (unit_gate.defined()) h = ops::mul(h, unit_gate);  // [.., F] * [F]
  return proj->forward(h);
}

// Parameters in Hugging Face order; a removed sublayer (0 heads, 0 FFN units) registers
// neither its module nor its LayerNorm.
TransformerBlock::TransformerBlock(const BlockConfig& c) : cfg(c) {
  if (c.style == BlockStyle::gpt2) {
    if (c.heads > 0) {
      ln_1 = register_module("ln_1", std::make_shared<LayerNorm>(c.width, c.ln_eps));
      attn = register_module("attn", std::make_shared<SelfAttention>(c));
    }
    if (c.ffn > 0) {
      ln_2 = register_module("ln_2", std::make_shared<LayerNorm>(c.width, c.ln_eps));
      mlp = register_module("mlp", std::make_shared<Mlp>(c));
    }
  } else {
    if (c.heads > 0) {
      attn = register_module("attention", std::make_shared<SelfAttention>(c));
      ln_1 = register_module("attention.output.LayerNorm", std::make_shared<LayerNorm>(c.width, c.ln_eps));
    }
    if (c.ffn > 0) {
      mlp = register_module("", std::make_shared<Mlp>(c));
      ln_2 = register_module("output.LayerNorm", std::make_shared<LayerNorm>(c.width, c.ln_eps));
    }
  }
  register_buffer("gate.layer", &layer_gate);
  register_buffer("gate.attention", &attention_gate);
  register_buffer("gate.ffn", &ffn_gate);
}

Tensor TransformerBlock::forward(const Tensor& x, const Tensor& key_padding_mask, uint64_t dropout_seed) const {
  return forward(x, key_padding_mask, dropout_seed, nullptr);
}

// CoFi's hidden gate (each LayerNorm's kept_gate, the same tensor in all of them) also
// multiplies every sublayer output before the residual add, as the reference's does: the
// residual stream is z ⊙ (...), so the gate folds into the weights that write it.
Tensor TransformerBlock::forward(const Tensor& x, const Tensor& key_padding_mask, uint64_t dropout_seed,
                                 Tensor* ffn_input) const {
  const bool drop = training_ && cfg.dropout > 0.f;
  if (cfg.style == BlockStyle::gpt2) {
    Tensor h = x;
    if (attn) {
      Tensor a = attn->forward(ln_1->forward(x), key_padding_mask, derive_seed(dropout_seed, 1));
      h = ops::add(x, gated(gated(gated(a, attention_gate), layer_gate), ln_1->kept_gate));
    }
    if (!mlp) return h;
    Tensor ln = ln_2->forward(h);
    if (ffn_input) *ffn_input = ln;
    Tensor m = mlp->forward(ln);
    if (drop) m = ops::dropout(m, cfg.dropout, derive_seed(dropout_seed, 2));
    return ops::add(h, gated(gated(gated(m, ffn_gate), layer_gate), ln_2->kept_gate));
  }
  // Post-LN: a sublayer whose gate is exactly 0 is skipped with the LayerNorm after it, as
  // CoFi's reference skips a sublayer whose output is all zeros: a closed gate then computes
  // what removing the sublayer (and its LayerNorm) computes.
  Tensor h = x;
  if (attn && !closed(attention_gate))
    h = ln_1->forward(ops::add(
        x, gated(gated(attn->forward(x, key_padding_mask, derive_seed(dropout_seed, 1)), attention_gate), ln_1->kept_gate)));
  Tensor y = h;
  if (mlp && !closed(ffn_gate)) {
    if (ffn_input) *ffn_input = h;
    Tensor m = mlp->forward(h);
    if (drop) m = ops::dropout(m, cfg.dropout, derive_seed(dropout_seed, 2));
    y = ln_2->forward(ops::add(h, gated(gated(m, ffn_gate), ln_2->kept_gate)));
  }
  if (!layer_gate.defined()) return y;
  // gate * y + (1 - gate) * x: exactly x at gate 0, exactly y at gate 1.
  return ops::add(ops::mul(y, layer_gate), ops::mul(x, ops::add_scalar(ops::neg(layer_gate), 1.f)));
}

}  // namespace scion::nn
