#include "shape_masks.h"

#include <cmath>
#include <numeric>

#include "hard_concrete.h"
#include "scion/autograd.h"
#include "scion/ops.h"
#include "scion/random.h"

namespace scion::prune {
namespace {

Tensor init_log_alpha(int64_t n, float mean, float std, uint64_t seed) {
  Tensor t = ops::add_scalar(ops::mul_scalar(Tensor::randn({n}, seed), std), mean);
  t = t.detach();
  t.set_requires_grad(true);
  return t;
}

// One gate per key/value group repeated over its query heads.
Tensor over_query_heads(const Tensor& group_gate, int64_t group) {
  if (group == 1) return group_gate;
  const int64_t kv = group_gate.numel();
  return ops::mul(group_gate.view({kv, 1}), Tensor::ones({1, group}, DType::f32, group_gate.device())).view({kv * group});
}

}  // namespace

std::string shape_problem(const Architecture& a, const TargetShape& t) {
  const int64_t L = a.layers();
  if (L == 0) return "the model has no layers";
  if (!a.uniform() || a.heads[0] == 0 || a.ffn[0] == 0) return "the model is not dense (prune a model whose layers all have both sublayers, alike)";
  const int64_t H = a.heads[0], F = a.ffn[0], g = H / a.kv_heads_at(0);
  auto over = [](const char* what, int64_t want, int64_t have) {
    return want > have ? std::string(what) + " " + std::to_string(want) + " is more than the model's " + std::to_string(have) +
                             " (pruning only removes)"
                       : std::string();
  };
  for (const std::string& e : {over("layers", t.layers, L), over("heads", t.heads, H), over("ffn", t.ffn, F),
                               over("width", t.width, a.width)})
    if (!e.empty()) return e;
  if (t.heads > 0 && t.heads % g != 0)
    return "heads " + std::to_string(t.heads) + " does not fill whole key/value groups of " + std::to_string(g) +
           " query heads (the model has " + std::to_string(H) + " heads on " + std::to_string(a.kv_heads_at(0)) +
           " key/value heads); heads must be a multiple of " + std::to_string(g);
  auto same = [](int64_t want, int64_t have) { return want == 0 || want == have; };
  if (same(t.layers, L) && same(t.heads, H) && same(t.ffn, F) && same(t.width, a.width))
    return "the target is the model's own shape: nothing to prune";
  return "";
}

ShapeMasks::ShapeMasks(const Architecture& a, const TargetShape& t, float log_alpha, float std, uint64_t seed)
    : arch_(a), target_(t) {
  const std::string problem = shape_problem(a, t);
  SCION_CHECK(problem.empty(), "loss.sheared: ", problem);
  const int64_t L = a.layers(), H = a.heads[0], F = a.ffn[0];
  group_ = H / a.kv_heads_at(0);
  uint64_t k = 0;
  if (t.layers > 0 && t.layers < L) {
    layer_ = init_log_alpha(L, log_alpha, std, derive_seed(seed, k++));
    names_.push_back("layers");
  }
  if (t.heads > 0 && t.heads < H) {
    for (int64_t l = 0; l < L; ++l) head_.push_back(init_log_alpha(H / group_, log_alpha, std, derive_seed(seed, k++)));
    names_.push_back("heads");
  }
  if (t.ffn > 0 && t.ffn < F) {
    for (int64_t l = 0; l < L; ++l) ffn_.push_back(init_log_alpha(F, log_alpha, std, derive_seed(seed, k++)));
    names_.push_back("ffn");
  }
  if (t.width > 0 && t.width < a.width) {
    hidden_ = init_log_alpha(a.width, log_alpha, std, derive_seed(seed, k++));
    names_.push_back("width");
  }
}

nn::NamedTensors ShapeMasks::log_alphas() const {
  nn::NamedTensors out;
  if (layer_.defined()) out.emplace_back("layer", layer_);
  for (size_t l = 0; l < head_.size(); ++l) out.emplace_back("head." + std::to_string(l), head_[l]);
  for (size_t l = 0; l < ffn_.size(); ++l) out.emplace_back("ffn_unit." + std::to_string(l), ffn_[l]);
  if (hidden_.defined()) out.emplace_back("hidden", hidden_);
  return out;
}

std::vector<ShapeMasks::Structure> ShapeMasks::structures_list() const {
  std::vector<Structure> out;
  const int64_t L = arch_.layers();
  if (layer_.defined()) out.push_back({"layers", {&layer_}, target_.layers, L});
  if (!head_.empty()) {
    Structure s{"heads", {}, target_.heads / group_, arch_.heads[0] / group_};
    for (const Tensor& t : head_) s.rows.push_back(&t);
    out.push_back(s);
  }
  if (!ffn_.empty()) {
    Structure s{"ffn", {}, target_.ffn, arch_.ffn[0]};
    for (const Tensor& t : ffn_) s.rows.push_back(&t);
    out.push_back(s);
  }
  if (hidden_.defined()) out.push_back({"width", {&hidden_}, target_.width, arch_.width});
  return out;
}

// mode 0: sampled (on the tape), 1: deterministic, 2: exact.
void ShapeMasks::set(TransformerModel& m, int mode, uint64_t seed) const {
  uint64_t k = 0;
  auto gate = [&](const Tensor& la, int64_t keep) {
    if (mode == 0) return HardConcrete::sample(la, derive_seed(seed, k++));
    return mode == 1 ? HardConcrete::deterministic(la) : HardConcrete::deterministic_keeping(la, keep);
  };
  if (layer_.defined()) {
    const Tensor z = gate(layer_, target_.layers);
    for (int64_t l = 0; l < arch_.layers(); ++l) {
      // Sheared-LLaMA's layer mask scales both sublayers of its layer.
      const Tensor zl = z.narrow(0, l, 1);
      m.set_gate(GateKind::attention, l, zl);
      m.set_gate(GateKind::ffn, l, zl);
    }
  }
  for (size_t l = 0; l < head_.size(); ++l)
    m.set_gate(GateKind::head, int64_t(l), over_query_heads(gate(head_[l], target_.heads / group_), group_));
  for (size_t l = 0; l < ffn_.size(); ++l) m.set_gate(GateKind::ffn_unit, int64_t(l), gate(ffn_[l], target_.ffn));
  if (hidden_.defined()) m.set_gate(GateKind::hidden_kept, -1, gate(hidden_, target_.width));
}

void ShapeMasks::set_sampled(TransformerModel& m, uint64_t seed) const { set(m, 0, seed); }
void ShapeMasks::set_deterministic(TransformerModel& m) const {
  NoGradGuard ng;
  set(m, 1, 0);
}
void ShapeMasks::set_exact(TransformerModel& m) const {
  NoGradGuard ng;
  set(m, 2, 0);
}

void ShapeMasks::clamp() {
  if (layer_.defined()) HardConcrete::clamp_(layer_);
  for (Tensor& t : head_) HardConcrete::clamp_(t);
  for (Tensor& t : ffn_) HardConcrete::clamp_(t);
  if (hidden_.defined()) HardConcrete::clamp_(hidden_);
}

Tensor ShapeMasks::lagrangian(const Tensor& lambda_1, const Tensor& lambda_2, double ramp) const {
  Tensor total;
  int64_t m = 0;
  for (const Structure& s : structures_list()) {
    const float t = float(ramp * (1.0 - double(s.keep) / double(s.size)));
    const Tensor l1 = lambda_1.narrow(0, m, 1), l2 = lambda_2.narrow(0, m, 1);
    Tensor sum;
    for (const Tensor* row : s.rows) {
      // ŝ − t = 1 − Σ P / size − t
      Tensor gap = ops::add_scalar(ops::mul_scalar(ops::sum_all(HardConcrete::keep_prob(*row)), -1.f / float(s.size)), 1.f - t);
      Tensor term = ops::add(ops::mul(l1, gap), ops::mul(l2, ops::mul(gap, gap)));
      sum = sum.defined() ? ops::add(sum, term) : term;
    }
    Tensor mean = ops::mul_scalar(ops::sum_all(sum), 1.f / float(s.rows.size()));
    total = total.defined() ? ops::add(total, mean) : mean;
    ++m;
  }
  return total.defined() ? total : Tensor::zeros({});
}

std::vector<double> ShapeMasks::expected_sparsity() const {
  NoGradGuard ng;
  std::vector<double> out;
  for (const Structure& s : structures_list()) {
    double sum = 0;
    for (const Tensor* row : s.rows) sum += 1.0 - double(ops::sum_all(HardConcrete::keep_prob(*row)).item()) / double(s.size);
    out.push_back(sum / double(s.rows.size()));
  }
  return out;
}

std::vector<double> ShapeMasks::target_sparsity() const {
  std::vector<double> out;
  for (const Structure& s : structures_list()) out.push_back(1.0 - double(s.keep) / double(s.size));
  return out;
}

void drop_empty_layers(TransformerModel& m, uint64_t seed) {
  const Architecture a = m.architecture();
  std::vector<int64_t> keep;
  for (int64_t l = 0; l < a.layers(); ++l)
    if (a.heads[size_t(l)] > 0 || a.ffn[size_t(l)] > 0) keep.push_back(l);
  if (int64_t(keep.size()) < a.layers()) surgery::reorder_blocks(m, keep, seed);
}

}  // namespace scion::prune
