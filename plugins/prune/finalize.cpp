#include "finalize.h"

#include "scion/autograd.h"

namespace scion::prune {

namespace {
std::vector<float> values(const Tensor& g, int64_t n) {
  if (!g.defined()) return std::vector<float>(size_t(n), 1.f);
  return g.detach().contiguous().to_vector();
}

// The output projection of a sublayer: the parameter of `layer` whose in-axis indexes `unit`
// (heads or FFN units); its bias is named like it.
std::string out_projection(const TransformerModel& m, int64_t layer, Unit unit, int& axis) {
  for (const auto& [name, t] : const_cast<TransformerModel&>(m).module().named_parameters()) {
    const ParamLayout lay = m.layout(name);
    if (lay.layer != layer || t.dim() != 2) continue;
    for (int ax = 0; ax < 2; ++ax)
      if (lay.axis[ax].unit == unit && lay.axis[ax].reads) {
        axis = ax;
        return name;
      }
  }
  throw Error("cofi: layer " + std::to_string(layer) + " has no output projection over " + unit_name(unit));
}

Tensor find(TransformerModel& m, const std::string& name) {
  for (const auto& [n, t] : m.module().named_parameters())
    if (n == name) return t;
  throw Error("cofi: the model has no parameter '" + name + "'");
}

// The bias of a projection, undefined when it has none (Llama's o_proj and down_proj).
Tensor bias_of(TransformerModel& m, const std::string& weight) {
  const std::string name = weight.substr(0, weight.size() - std::string("weight").size()) + "bias";
  for (const auto& [n, t] : m.module().named_parameters())
    if (n == name) return t;
  return Tensor();
}

// t[.., u, ..] *= scale[u / group] along `axis` of a 1-D or 2-D tensor, in place.
void scale_along(Tensor t, int axis, const std::vector<float>& scale, int64_t group) {
  std::vector<float> v = t.detach().contiguous().to_vector();
  const int64_t r = t.size(0), c = t.dim() == 2 ? t.size(1) : 1;
  for (int64_t i = 0; i < r; ++i)
    for (int64_t j = 0; j < c; ++j) v[size_t(i * c + j)] *= scale[size_t((axis == 0 ? i : j) / group)];
  t.copy_(Tensor::from_vector(v, t.shape()));
}

// W[.., u, ..] *= scale[u] along `axis` (u in units of `group` rows), bias *= sublayer.
void fold(TransformerModel& m, const std::string& weight, int axis, const std::vector<float>& scale, int64_t group,
          float sublayer) {
  scale_along(find(m, weight), axis, scale, group);
  if (Tensor b = bias_of(m, weight); b.defined()) scale_along(b, 0, std::vector<float>(size_t(b.numel()), sublayer), 1);
}

// CoFi's hidden gate z: the model multiplies the embeddings, the sublayer outputs and every
// LayerNorm's output by it, so the residual stream is z ⊙ (...) and the LayerNorms take their
// statistics over the dimensions where z ≠ 0 of that stream. Multiplying the tensors the model
// marks (ParamLayout::hidden_fold) by z gives the same stream with no gate; the dimensions at
// 0 are then zero everywhere the stream is written and can go.
void fold_hidden(TransformerModel& m, const std::vector<float>& z) {
  for (const auto& [name, t] : m.module().named_parameters()) {
    const ParamLayout lay = m.layout(name);
    if (!lay.hidden_fold) continue;
    int axis = -1;
    for (int ax = 0; ax < t.dim() && ax < 2; ++ax)
      if (lay.axis[ax].unit == Unit::hidden) {
        SCION_CHECK(axis < 0, "cofi: '", name, "' has two hidden axes; the hidden gate folds into one");
        axis = ax;
      }
    SCION_CHECK(axis >= 0, "cofi: '", name, "' is marked to fold the hidden gate but has no hidden axis");
    scale_along(t, axis, z, 1);
  }
}

// One sublayer: fold, then the units to keep (empty: remove the sublayer).
std::vector<int64_t> settle(TransformerModel& m, int64_t layer, Unit unit, GateKind units_kind, GateKind sub_kind,
                            int64_t n, int64_t group, PruneReport& r, int64_t& removed) {
  const std::vector<float> u = values(m.gate(units_kind, layer), n);
  const float s = values(m.gate(sub_kind, layer), 1)[0];
  m.set_gate(units_kind, layer, Tensor());
  m.set_gate(sub_kind, layer, Tensor());
  if (s == 0.f) {
    ++removed;
    return {};
  }
  std::vector<int64_t> keep;
  std::vector<float> scale(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    scale[size_t(i)] = u[size_t(i)] * s;
    if (u[size_t(i)] != 0.f) keep.push_back(i);
  }
  int axis = 0;
  const std::string proj = out_projection(m, layer, unit, axis);
  if (keep.empty()) {
    // Every unit closed, the sublayer open: it adds its output bias alone. Without a bias it
    // adds nothing and goes; with one a dead unit (zero output weights) keeps the bias — one
    // query head, with the key/value head it reads, where the layer groups them.
    if (!bias_of(m, proj).defined()) {
      ++removed;
      return {};
    }
    keep.push_back(0);
    ++r.bias_only;
  }
  fold(m, proj, axis, scale, group, s);
  return keep;
}
}  // namespace

PruneReport prune_with_gates(TransformerModel& m) {
  NoGradGuard ng;
  PruneReport r;
  const Architecture a = m.architecture();
  r.width_before = a.width;
  SCION_CHECK(!m.gate(GateKind::hidden, -1).defined(), "cofi: the model's hidden gate follows MSG's rule (LayerNorm "
              "statistics weighted by it), which no weight absorbs; CoFi's finalisation folds its own hidden_kept gate "
              "(hint: end a grow.masked ramp before pruning)");
  for (int64_t l = 0; l < a.layers(); ++l) {
    SCION_CHECK(!m.gate(GateKind::layer, l).defined(), "cofi: layer ", l, " has a layer gate; CoFi's finalisation "
                "folds head, sublayer, FFN-unit and hidden gates only (hint: end a grow.masked ramp before pruning)");
    r.heads_before += a.heads[size_t(l)];
    r.ffn_before += a.ffn[size_t(l)];
  }
  for (int64_t l = 0; l < a.layers(); ++l) {
    const Architecture now = m.architecture();
    if (now.heads[size_t(l)] > 0) {
      const auto keep = settle(m, l, Unit::head, GateKind::head, GateKind::attention, now.heads[size_t(l)],
                               now.head_size, r, r.attention_removed);
      if (int64_t(keep.size()) != now.heads[size_t(l)]) surgery::keep_units(m, Unit::head, l, keep);
    }
    if (now.ffn[size_t(l)] > 0) {
      const auto keep = settle(m, l, Unit::ffn, GateKind::ffn_unit, GateKind::ffn, now.ffn[size_t(l)], 1, r,
                               r.ffn_removed);
      if (int64_t(keep.size()) != now.ffn[size_t(l)]) surgery::keep_units(m, Unit::ffn, l, keep);
    }
  }
  if (const Tensor hz = m.gate(GateKind::hidden_kept, -1); hz.defined()) {
    const std::vector<float> h = values(hz, a.width);
    std::vector<int64_t> keep;
    for (int64_t i = 0; i < a.width; ++i)
      if (h[size_t(i)] != 0.f) keep.push_back(i);
    SCION_CHECK(!keep.empty(), "cofi: every hidden dimension's gate is 0; nothing would be left of the model");
    fold_hidden(m, h);
    m.set_gate(GateKind::hidden_kept, -1, Tensor());
    if (int64_t(keep.size()) != a.width) surgery::keep_units(m, Unit::hidden, -1, keep);
  }
  const Architecture b = m.architecture();
  for (int64_t l = 0; l < b.layers(); ++l) r.heads_after += b.heads[size_t(l)], r.ffn_after += b.ffn[size_t(l)];
  r.width_after = b.width;
  return r;
}

}  // namespace scion::prune
