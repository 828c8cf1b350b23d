#include "masked_growth.h"

#include <map>

#include "scion/autograd.h"
#include "scion/growth.h"
#include "scion/random.h"

namespace scion::growth {

void place_old(const std::string& name, const ParamLayout& lay, const Tensor& old, Tensor& dst) {
  SCION_CHECK(old.dim() == dst.dim(), "grow.masked: '", name, "' ", old.desc(), " cannot be placed in ", dst.desc());
  for (int64_t a = 0; a < old.dim(); ++a)
    SCION_CHECK(old.size(a) <= dst.size(a), "grow.masked: '", name, "' ", old.desc(), " does not fit in ", dst.desc());
  const int64_t qkv_axis = lay.axis[0].unit == Unit::qkv ? 0 : lay.axis[1].unit == Unit::qkv ? 1 : -1;
  if (qkv_axis >= 0 && qkv_axis < old.dim()) {
    // GPT's fused q|k|v: the old heads lead each of the three blocks.
    const int64_t ax = qkv_axis, oc = old.size(ax) / 3, nc = dst.size(ax) / 3;
    for (int64_t j = 0; j < 3; ++j) {
      Tensor d = dst.narrow(ax, j * nc, oc);
      for (int64_t a = 0; a < old.dim(); ++a)
        if (a != ax) d = d.narrow(a, 0, old.size(a));
      d.copy_(old.narrow(ax, j * oc, oc));
    }
    return;
  }
  Tensor d = dst;
  for (int64_t a = 0; a < old.dim(); ++a) d = d.narrow(a, 0, old.size(a));
  d.copy_(old);
}

namespace {
// [1 × old, 0 × (n − old)], or undefined when nothing grew.
Tensor ramp_start(int64_t old, int64_t n) {
  if (n == old) return Tensor();
  Tensor g = Tensor::ones({n});
  g.narrow(0, old, n - old).fill_(0.f);
  return g;
}
}  // namespace

void grow_masked(TransformerModel& m, const MaskedOptions& o, int64_t at_step) {
  const char* who = "grow.masked";
  NoGradGuard ng;
  const Architecture a = m.architecture();
  SCION_CHECK(a.uniform() && a.layers() > 0 && a.heads[0] * a.head_size == a.width, who,
              ": masked growth needs a model whose layers all have width / head size heads and one FFN size");
  const int64_t D = a.head_size, L = a.layers();
  Architecture na = a;
  na.width = o.width > 0 ? o.width : a.width;
  const int64_t F = o.ffn > 0 ? o.ffn : a.ffn[0];
  const int64_t NL = o.layers > 0 ? o.layers : L;
  SCION_CHECK(na.width >= a.width, who, ": new width ", na.width, " is smaller than the old ", a.width);
  SCION_CHECK(na.width % D == 0, who, ": new width ", na.width, " is not a multiple of the head size ", D,
              " (heads grow at a fixed head size)");
  SCION_CHECK(F >= a.ffn[0], who, ": new FFN width ", F, " is smaller than the old ", a.ffn[0]);
  SCION_CHECK(NL >= L, who, ": new layer count ", NL, " is smaller than the old ", L);
  SCION_CHECK(o.ramp_steps > 0, who, ": ramp_steps must be positive");
  const int64_t H = na.width / D, group = a.heads[0] / a.kv_heads_at(0);
  // A grouped-query model grows by whole groups: the new query heads get new key/value heads
  // of their own, behind the same gate.
  SCION_CHECK(H % group == 0, who, ": new width ", na.width, " gives ", H, " heads, which cannot be grouped by ", group,
              " around key/value heads (choose a multiple of ", group * D, ")");
  growth::check_fits(a, na.width, F, NL, who);
  na.heads.assign(size_t(NL), H);
  if (!a.kv_heads.empty()) na.kv_heads.assign(size_t(NL), H / group);
  na.ffn.assign(size_t(NL), F);

  std::map<std::string, Tensor> old;
  for (const auto& [n, t] : m.module().named_parameters()) old[n] = t;
  nn::NamedTensors grown = m.initial_parameters(na, derive_seed(o.seed, 0x356));
  for (auto& [name, t] : grown) {
    const ParamLayout lay = m.layout(name);
    auto it = old.find(name);
    if (it == old.end() && o.stack_new_layers && lay.layer >= L) {
      // A new layer: its gate hides it, so any weights keep the function; stacking starts it
      // from old layer (l mod L) — the old weights placed in its leading slices, fresh ones
      // around them — instead of from scratch (MSG's stack_block).
      it = old.find(m.block_prefix(lay.layer % L) + name.substr(m.block_prefix(lay.layer).size()));
    }
    if (it != old.end()) place_old(name, lay, it->second, t);  // else fresh weights behind the gate
  }
  m.rebuild(na, grown);
  // The gates at the ramp's start: old structure 1, new structure 0.
  m.set_gate(GateKind::hidden, -1, ramp_start(a.width, na.width));
  for (int64_t l = 0; l < NL; ++l) {
    if (l >= L) {
      m.set_gate(GateKind::layer, l, Tensor::zeros({1}));
      continue;
    }
    m.set_gate(GateKind::head, l, ramp_start(a.heads[0], H));
    m.set_gate(GateKind::ffn_unit, l, ramp_start(a.ffn[0], F));
  }
  m.set_gate_ramp(at_step, o.ramp_steps);
}

}  // namespace scion::growth
