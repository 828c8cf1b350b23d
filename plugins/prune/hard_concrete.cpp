#include "hard_concrete.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "scion/autograd.h"
#include "scion/ops.h"

namespace scion::prune {

Tensor sigmoid(const Tensor& x) { return ops::add_scalar(ops::mul_scalar(ops::tanh(ops::mul_scalar(x, 0.5f)), 0.5f), 0.5f); }

Tensor HardConcrete::sample(const Tensor& log_alpha, uint64_t seed) {
  // The logistic noise log u − log(1 − u) is a constant of the step.
  Tensor noise;
  {
    NoGradGuard ng;
    Tensor u = Tensor::rand(log_alpha.shape(), seed, kEps, 1.f - kEps, log_alpha.device());
    noise = ops::sub(ops::log(u), ops::log(ops::add_scalar(ops::neg(u), 1.f)));
  }
  Tensor s = sigmoid(ops::mul_scalar(ops::add(log_alpha, noise), 1.f / kBeta));
  return ops::clamp(ops::add_scalar(ops::mul_scalar(s, kRight - kLeft), kLeft), 0.f, 1.f);
}

Tensor HardConcrete::keep_prob(const Tensor& log_alpha) {
  return sigmoid(ops::add_scalar(log_alpha, -kBeta * std::log(-kLeft / kRight)));
}

namespace {
// σ(log α/β · 0.8) with the `zeros` smallest set to 0 (ties by index: a pure function of log α).
Tensor soft_mask_without(const Tensor& log_alpha, size_t zeros) {
  const std::vector<float> la = log_alpha.detach().contiguous().to_vector();
  const size_t n = la.size();
  std::vector<float> soft(n);
  for (size_t i = 0; i < n; ++i)
    soft[i] = 1.f / (1.f + std::exp(-la[i] / HardConcrete::kBeta * HardConcrete::kDeterministicScale));
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return soft[a] < soft[b]; });
  for (size_t i = 0; i < std::min(zeros, n); ++i) soft[order[i]] = 0.f;
  return Tensor::from_vector(soft, log_alpha.shape());
}
}  // namespace

Tensor HardConcrete::deterministic(const Tensor& log_alpha) {
  NoGradGuard ng;
  const std::vector<float> keep = keep_prob(log_alpha.detach()).contiguous().to_vector();
  const double expected_kept = std::accumulate(keep.begin(), keep.end(), 0.0);
  const size_t n = keep.size();
  return soft_mask_without(log_alpha, n - std::min<size_t>(n, size_t(std::llround(expected_kept))));
}

Tensor HardConcrete::deterministic_keeping(const Tensor& log_alpha, int64_t keep) {
  NoGradGuard ng;
  const size_t n = size_t(log_alpha.numel());
  return soft_mask_without(log_alpha, n - std::min<size_t>(n, size_t(std::max<int64_t>(keep, 0))));
}

void HardConcrete::clamp_(Tensor& log_alpha) {
  NoGradGuard ng;
  log_alpha.copy_(ops::clamp(log_alpha.detach(), kLogAlphaMin, kLogAlphaMax));
}

}  // namespace scion::prune
