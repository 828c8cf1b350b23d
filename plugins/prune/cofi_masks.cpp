#include "cofi_masks.h"

#include "hard_concrete.h"
#include "scion/autograd.h"
#include "scion/ops.h"
#include "scion/random.h"

namespace scion::prune {

namespace {
Tensor init_log_alpha(int64_t n, float mean, float std, uint64_t seed) {
  Tensor t = Tensor::randn({n}, seed, mean, std);
  t.set_requires_grad(true);
  return t;
}
}  // namespace

namespace {
// Llama's SwiGLU has three matrices per FFN unit (gate, up, down); GELU's MLP two.
double mlp_matrices(const Architecture& a) { return a.family == "llama" ? 3.0 : 2.0; }

// The count per (kept hidden dimension, kept head group) of layer l: the group's share of the
// attention sublayer over the d hidden dimensions. A group is a key/value head with the query
// heads it serves (one head in a multi-head layer, where this is the reference's (4d² + 4d)/H:
// q, k, v, o and their biases). Llama's projections have no biases (Qwen2's q/k/v biases are
// not counted).
double per_hidden_group(const Architecture& dense, size_t l) {
  const double d = double(dense.width), H = double(dense.heads[l]), KV = double(dense.kv_heads_at(int64_t(l)));
  const double D = double(dense.head_size);
  const double weights = d * D * (2.0 * H + 2.0 * KV);
  const double biases = dense.family == "llama" ? 0.0 : (H + 2.0 * KV) * D + d;
  return (weights + biases) / (KV * d);
}

// A grouped-query layer counts query heads and key/value heads apart (per kept hidden
// dimension): a query head its q columns and o rows (2D, with its q bias D and its 1/H share of
// the o bias over d), a key/value head its k and v columns (2D, with their biases 2D over d).
// In a multi-head layer the two add up to per_hidden_group.
bool grouped_layer(const Architecture& a, size_t l) {
  return a.kv_heads_at(int64_t(l)) != a.heads[l] || a.ragged(int64_t(l));
}
double per_hidden_query_head(const Architecture& dense, size_t l) {
  const double d = double(dense.width), H = double(dense.heads[l]), D = double(dense.head_size);
  const double biases = dense.family == "llama" ? 0.0 : D + d / H;
  return (2.0 * d * D + biases) / d;
}
double per_hidden_kv_head(const Architecture& dense, size_t l) {
  const double d = double(dense.width), D = double(dense.head_size);
  const double biases = dense.family == "llama" ? 0.0 : 2.0 * D;
  return (2.0 * d * D + biases) / d;
}

// Σ_j P(key/value head j kept) = Σ_j (1 − Π_{h reads j} (1 − p_h)), p the query heads' keep
// probabilities [H] and map[h] the key/value head query head h reads: a key/value head goes
// only when every query head reading it does (the masks are independent).
Tensor expected_kv_heads(const Tensor& p, const std::vector<int64_t>& map, int64_t kv_heads) {
  const int64_t H = int64_t(map.size());
  // reads[h, j] = 1 where query head h reads j: log Π_h (1 − p_h) = Σ_h reads[h, j]·log(1 − p_h)
  std::vector<float> one_hot(size_t(H * kv_heads), 0.f);
  for (int64_t h = 0; h < H; ++h) one_hot[size_t(h * kv_heads + map[size_t(h)])] = 1.f;
  const Tensor reads = Tensor::from_vector(one_hot, {H, kv_heads}, p.device());
  // 1 − p clamped away from 0 keeps the log finite (a query head certain to stay keeps its kv head).
  const Tensor dropped = ops::clamp(ops::add_scalar(ops::mul_scalar(p, -1.f), 1.f), 1e-12f, 1.f);
  const Tensor all_dropped = ops::exp(ops::matmul(ops::log(dropped).view({1, H}), reads));
  return ops::sum_all(ops::add_scalar(ops::mul_scalar(all_dropped, -1.f), 1.f));
}
}  // namespace

double dense_params(const Architecture& a) {
  double n = 0;
  const double d = double(a.width);
  for (size_t l = 0; l < size_t(a.layers()); ++l) {
    const double attention = per_hidden_group(a, l) * double(a.kv_heads_at(int64_t(l))) * d;
    // GPT/BERT: the FFN's 2dF plus its output bias and the two LayerNorms (5d, the reference's
    // count); Llama: 3dF and two RMSNorm weights.
    n += attention + mlp_matrices(a) * d * double(a.ffn[l]) + (a.family == "llama" ? 2.0 * d : 5.0 * d);
  }
  return n;
}

double kept_params(const Architecture& a, const Architecture& dense) {
  SCION_CHECK(a.layers() == dense.layers(), "cofi: a pruned model of ", a.layers(), " layers from a dense one of ",
              dense.layers());
  double n = 0;
  for (size_t l = 0; l < size_t(a.layers()); ++l) {
    const double attention =
        grouped_layer(dense, l)
            ? double(a.heads[l]) * per_hidden_query_head(dense, l) +
                  double(a.kv_heads_at(int64_t(l))) * per_hidden_kv_head(dense, l)
            : double(a.heads[l]) * per_hidden_group(dense, l);
    n += double(a.width) * (attention + mlp_matrices(dense) * double(a.ffn[l]));
  }
  return n;
}

CofiMasks::CofiMasks(const Architecture& a, const MaskInit& init) : arch_(a) {
  for (int64_t l = 0; l < a.layers(); ++l) {
    SCION_CHECK(a.heads[size_t(l)] > 0 && a.ffn[size_t(l)] > 0, "loss.cofi: layer ", l, " has ", a.heads[size_t(l)],
                " heads and ", a.ffn[size_t(l)], " FFN units; CoFi prunes a model whose layers all have both sublayers "
                "(hint: load the dense model, not an already pruned one)");
    const uint64_t s = derive_seed(init.seed, uint64_t(l) * 8);
    // One mask per query head; a grouped layer's key/value head goes with the last query head
    // that reads it.
    head_.push_back(init_log_alpha(a.heads[size_t(l)], init.log_alpha, init.std, derive_seed(s, 1)));
    attention_.push_back(init_log_alpha(1, init.log_alpha, init.std, derive_seed(s, 2)));
    ffn_unit_.push_back(init_log_alpha(a.ffn[size_t(l)], init.ffn_unit_log_alpha, init.std, derive_seed(s, 3)));
    ffn_.push_back(init_log_alpha(1, init.log_alpha, init.std, derive_seed(s, 4)));
  }
  hidden_ = init_log_alpha(a.width, init.log_alpha, init.std, derive_seed(init.seed, 0x41d));
}

nn::NamedTensors CofiMasks::log_alphas() const {
  nn::NamedTensors out;
  for (size_t l = 0; l < head_.size(); ++l) {
    const std::string i = std::to_string(l);
    out.emplace_back("head." + i, head_[l]);
    out.emplace_back("attention." + i, attention_[l]);
    out.emplace_back("ffn_unit." + i, ffn_unit_[l]);
    out.emplace_back("ffn." + i, ffn_[l]);
  }
  out.emplace_back("hidden", hidden_);
  return out;
}

void CofiMasks::set_sampled(TransformerModel& m, uint64_t seed) const {
  SCION_CHECK(m.architecture() == arch_, "loss.cofi: the model's architecture changed since its masks were made "
              "(hint: prune a model once, after any growth)");
  uint64_t k = 0;
  auto z = [&](const Tensor& la) { return HardConcrete::sample(la, derive_seed(seed, k++)); };
  for (size_t l = 0; l < head_.size(); ++l) {
    m.set_gate(GateKind::head, int64_t(l), z(head_[l]));
    m.set_gate(GateKind::attention, int64_t(l), z(attention_[l]));
    m.set_gate(GateKind::ffn_unit, int64_t(l), z(ffn_unit_[l]));
    m.set_gate(GateKind::ffn, int64_t(l), z(ffn_[l]));
  }
  m.set_gate(GateKind::hidden_kept, -1, z(hidden_));
}

void CofiMasks::set_deterministic(TransformerModel& m) const {
  SCION_CHECK(m.architecture() == arch_, "loss.cofi: the model's architecture changed since its masks were made");
  for (size_t l = 0; l < head_.size(); ++l) {
    m.set_gate(GateKind::head, int64_t(l), HardConcrete::deterministic(head_[l]));
    m.set_gate(GateKind::attention, int64_t(l), HardConcrete::deterministic(attention_[l]));
    m.set_gate(GateKind::ffn_unit, int64_t(l), HardConcrete::deterministic(ffn_unit_[l]));
    m.set_gate(GateKind::ffn, int64_t(l), HardConcrete::deterministic(ffn_[l]));
  }
  m.set_gate(GateKind::hidden_kept, -1, HardConcrete::deterministic(hidden_));
}

void CofiMasks::clamp() {
  for (auto& [name, t] : log_alphas()) HardConcrete::clamp_(t);
}

Tensor CofiMasks::expected_params() const {
  // Hidden, head and unit masks are independent: E[Σ_i Σ_h z_i·z_h] = (Σ_i p_i)·(Σ_h p_h).
  Tensor hidden = ops::sum_all(HardConcrete::keep_prob(hidden_));
  Tensor total;
  for (size_t l = 0; l < head_.size(); ++l) {
    const Tensor p_heads = HardConcrete::keep_prob(head_[l]);
    Tensor per_hidden;  // E[attention parameters per kept hidden dimension] before the sublayer mask
    if (grouped_layer(arch_, l)) {
      const Tensor kv = expected_kv_heads(p_heads, arch_.kv_map_at(int64_t(l)), arch_.kv_heads_at(int64_t(l)));
      per_hidden = ops::add(ops::mul_scalar(ops::sum_all(p_heads), float(per_hidden_query_head(arch_, l))),
                            ops::mul_scalar(kv, float(per_hidden_kv_head(arch_, l))));
    } else {
      per_hidden = ops::mul_scalar(ops::sum_all(p_heads), float(per_hidden_group(arch_, l)));
    }
    Tensor attention = ops::mul(per_hidden, ops::sum_all(HardConcrete::keep_prob(attention_[l])));
    Tensor units = ops::mul(ops::sum_all(HardConcrete::keep_prob(ffn_unit_[l])),
                            ops::sum_all(HardConcrete::keep_prob(ffn_[l])));
    Tensor layer = ops::add(attention, ops::mul_scalar(units, float(mlp_matrices(arch_))));
    total = total.defined() ? ops::add(total, layer) : layer;
  }
  return total.defined() ? ops::mul(total, hidden) : Tensor::scalar(0.f);
}

double CofiMasks::dense_params() const { return prune::dense_params(arch_); }

Tensor CofiMasks::expected_sparsity() const {
  return ops::add_scalar(ops::mul_scalar(expected_params(), float(-1.0 / dense_params())), 1.f);
}

}  // namespace scion::prune
