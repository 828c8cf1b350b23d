// Self-attention, MLP and transformer blocks of the one transformer description (BlockConfig):
// pre- or post-norm, LayerNorm or RMSNorm, GELU or SwiGLU, fused or separate q/k/v, grouped
// key/value heads and rotary positions; named as their Hugging Face twins name them
// (transformer_names).
#include <cmath>

#include "scion/nn.h"
#include "scion/activations.h"
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
  return c.family == "gpt2" ? c.init.std / std::sqrt(2.f * float(c.layers_for_init)) : c.init.std;
}
std::shared_ptr<Linear> linear(int64_t in, int64_t out, bool bias, const BlockConfig& c, uint64_t salt, float std) {
  return std::make_shared<Linear>(in, out, bias, transformer_names(c.family).conv1d, child_init(c.init, salt, std));
}
// x [B, T, heads*D] rotated per position by the tables (rows 0..T-1).
Tensor rotate(const Tensor& x, int64_t heads, const ops::RopeTables& rope) {
  const int64_t B = x.size(0), T = x.size(1), C = x.size(2);
  return ops::rotary(x.view({B, T, heads, C / heads}), rope.cos, rope.sin).view({B, T, C});
}
}  // namespace

// Init salts are fixed per role (q 3, k 4, v 5, o 6, up 7, down 8, gate 9; GPT-2's fused qkv
// 1 and its c_proj 2), so a family's initialisation does not depend on registration order.
SelfAttention::SelfAttention(const BlockConfig& c) : cfg(c) {
  const int64_t kv = c.kv_head_count();
  SCION_CHECK(c.heads > 0 && (c.head_size > 0 || c.width % c.heads == 0), "attention: width ", c.width,
              " is not divisible by ", c.heads, " heads");
  if (c.kv_map.empty())
    SCION_CHECK(kv > 0 && c.heads % kv == 0, "attention: ", kv, " key/value heads do not divide ", c.heads,
                " query heads");
  else
    SCION_CHECK(int64_t(c.kv_map.size()) == c.heads, "attention: a key/value map of ", c.kv_map.size(),
                " entries for ", c.heads, " query heads");
  const TransformerNames& n = transformer_names(c.family);
  // C in, A = heads * head size inside (equal to C unless heads were pruned or the family
  // chooses its head size); key/value heads KV * head size each.
  const int64_t C = c.width, A = c.heads * c.head_dim(), K = kv * c.head_dim();
  if (!n.qkv.empty()) {
    SCION_CHECK(kv == c.heads, "attention: family ", c.family, " has no grouped key/value heads");
    qkv = register_module(n.qkv, linear(C, 3 * A, c.qkv_bias, c, 1, c.init.std));
    o = register_module(n.o, linear(A, C, c.o_bias, c, 2, residual_std(c)));
  } else {
    q = register_module(n.q, linear(C, A, c.qkv_bias, c, 3, c.init.std));
    k = register_module(n.k, linear(C, K, c.qkv_bias, c, 4, c.init.std));
    v = register_module(n.v, linear(C, K, c.qkv_bias, c, 5, c.init.std));
    o = register_module(n.o, linear(A, C, c.o_bias, c, 6, residual_std(c)));
  }
  register_buffer("gate.head", &head_gate);
}

Tensor SelfAttention::forward(const Tensor& x, const BlockInputs& in) const {
  Tensor y;
  if (qkv) {
    // [B, T, 3A]: q, k, v side by side, read in place
    y = ops::attention_packed(qkv->forward(x), cfg.heads, cfg.causal, in.key_padding_mask);
  } else {
    const int64_t kv = cfg.kv_head_count();
    Tensor qs = q->forward(x), ks = k->forward(x), vs = v->forward(x);
    if (cfg.rotary) {
      SCION_CHECK(in.rope && in.rope->cos.defined() && in.rope->cos.size(0) >= x.size(1),
                  "attention: a rotary block needs rope tables for ", x.size(1), " positions");
      const ops::RopeTables rope = in.rope->cos.size(0) == x.size(1)
                                       ? *in.rope
                                       : ops::RopeTables{in.rope->cos.narrow(0, 0, x.size(1)), in.rope->sin.narrow(0, 0, x.size(1))};
      qs = rotate(qs, cfg.heads, rope);
      ks = rotate(ks, kv, rope);
    }
    if (!cfg.kv_map.empty()) y = ops::attention_grouped(qs, ks, vs, cfg.kv_map, cfg.causal, in.key_padding_mask);
    else if (kv == cfg.heads) y = ops::attention(qs, ks, vs, cfg.heads, cfg.causal, in.key_padding_mask);
    else y = ops::attention_grouped(qs, ks, vs, cfg.heads, kv, cfg.causal, in.key_padding_mask);
  }
  if (head_gate.defined()) y = gate_heads(y, head_gate, cfg.heads);
  if (ActivationRecord* r = activation_record(); r && !r->blocks.empty()) r->blocks.back().attention_context = y;
  y = o->forward(y);
  if (training_ && cfg.dropout > 0.f) y = ops::dropout(y, cfg.dropout, in.dropout_seed);
  return y;
}

Mlp::Mlp(const BlockConfig& c) : cfg(c) {
  const TransformerNames& n = transformer_names(c.family);
  if (c.mlp == MlpKind::swiglu) {
    SCION_CHECK(!n.gate.empty(), "mlp: family ", c.family, " has no gated MLP");
    gate = register_module(n.gate, linear(c.width, c.ffn, c.mlp_bias, c, 9, c.init.std));
  }
  up = register_module(n.up, linear(c.width, c.ffn, c.mlp_bias, c, 7, c.init.std));
  down = register_module(n.down, linear(c.ffn, c.width, c.mlp_bias, c, 8, residual_std(c)));
  register_buffer("gate.unit", &unit_gate);
}

Tensor Mlp::forward(const Tensor& x) const {
  Tensor h = gate ? ops::swiglu(gate->forward(x), up->forward(x)) : ops::gelu(up->forward(x));
  if (unit_gate.defined()) h = ops::mul(h, unit_gate);  // [.., F] * [F]
  if (ActivationRecord* r = activation_record(); r && !r->blocks.empty()) r->blocks.back().ffn_hidden = h;
  return down->forward(h);
}

// Parameters in Hugging Face order: a pre-norm block registers each norm before its sublayer,
// a post-norm block after it. A removed sublayer (0 heads, 0 FFN units) registers neither its
// module nor its norm.
TransformerBlock::TransformerBlock(const BlockConfig& c) : cfg(c) {
  const TransformerNames& n = transformer_names(c.family);
  auto norm = [&](const std::string& name) {
    return register_module(name, std::make_shared<Norm>(c.width, c.ln_eps, c.norm));
  };
  if (c.heads > 0) {
    if (c.pre_norm) ln_1 = norm(n.attn_norm);
    attn = register_module(n.attention, std::make_shared<SelfAttention>(c));
    if (!c.pre_norm) ln_1 = norm(n.attn_norm);
  }
  if (c.ffn > 0) {
    if (c.pre_norm) ln_2 = norm(n.ffn_norm);
    mlp = register_module(n.mlp, std::make_shared<Mlp>(c));
    if (!c.pre_norm) ln_2 = norm(n.ffn_norm);
  }
  register_buffer("gate.layer", &layer_gate);
  register_buffer("gate.attention", &attention_gate);
  register_buffer("gate.ffn", &ffn_gate);
}

// CoFi's hidden gate (each norm's kept_gate, the same tensor in all of them) also multiplies
// every sublayer output before the residual add, as the reference's does: the residual stream
// is z ⊙ (...), so the gate folds into the weights that write it.
Tensor TransformerBlock::forward(const Tensor& x, const BlockInputs& in) const {
  // While a recorder is installed (scion/activations.h) this block's activations are its last
  // entry; the sublayers fill theirs.
  ActivationRecord* rec = activation_record();
  if (rec) rec->blocks.emplace_back().input = x;
  const Tensor out = [&]() -> Tensor {
    const bool drop = training_ && cfg.dropout > 0.f;
    BlockInputs attn_in = in;
    attn_in.dropout_seed = derive_seed(in.dropout_seed, 1);
    if (cfg.pre_norm) {
      Tensor h = x;
      if (attn) {
        Tensor n = ln_1->forward(x);
        if (rec) rec->blocks.back().attention_norm = n;
        Tensor a = attn->forward(n, attn_in);
        h = ops::add(x, gated(gated(gated(a, attention_gate), layer_gate), ln_1->kept_gate));
      }
      if (!mlp) return h;
      Tensor ln = ln_2->forward(h);
      if (in.ffn_input) *in.ffn_input = ln;
      if (rec) rec->blocks.back().ffn_norm = ln;
      Tensor m = mlp->forward(ln);
      if (drop) m = ops::dropout(m, cfg.dropout, derive_seed(in.dropout_seed, 2));
      return ops::add(h, gated(gated(gated(m, ffn_gate), layer_gate), ln_2->kept_gate));
    }
    // Post-norm: a sublayer whose gate is exactly 0 is skipped with the norm after it, as
    // CoFi's reference skips a sublayer whose output is all zeros: a closed gate then computes
    // what removing the sublayer (and its norm) computes.
    Tensor h = x;
    if (attn && !closed(attention_gate))
      h = ln_1->forward(ops::add(x, gated(gated(attn->forward(x, attn_in), attention_gate), ln_1->kept_gate)));
    Tensor y = h;
    if (mlp && !closed(ffn_gate)) {
      if (in.ffn_input) *in.ffn_input = h;
      Tensor m = mlp->forward(h);
      if (drop) m = ops::dropout(m, cfg.dropout, derive_seed(in.dropout_seed, 2));
      y = ln_2->forward(ops::add(h, gated(gated(m, ffn_gate), ln_2->kept_gate)));
    }
    if (!layer_gate.defined()) return y;
    // gate * y + (1 - gate) * x: exactly x at gate 0, exactly y at gate 1.
    return ops::add(ops::mul(y, layer_gate), ops::mul(x, ops::add_scalar(ops::neg(layer_gate), 1.f)));
  }();
  if (rec) rec->blocks.back().output = out;
  return out;
}

}  // namespace scion::nn
