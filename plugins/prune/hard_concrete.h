// Hard-concrete gates (Louizos, Welling, Kingma, ICLR 2018) with CoFi's constants: a
// stretched, clamped binary-concrete variable z in [0, 1] whose log α is trained.
#pragma once
#include <cstdint>

#include "scion/tensor.h"

namespace scion::prune {

struct HardConcrete {
  static constexpr float kLeft = -0.1f, kRight = 1.1f;  // the stretch interval (l, r)
  static constexpr float kBeta = 2.f / 3.f;             // temperature
  static constexpr float kEps = 1e-6f;                  // u ~ U(eps, 1 - eps)
  static constexpr float kLogAlphaMin = -4.605170186f;  // log 0.01: the clamp after each update
  static constexpr float kLogAlphaMax = 4.605170186f;   // log 100
  static constexpr float kDeterministicScale = 0.8f;    // the reference's soft mask σ(log α / β · 0.8)

  // One sample per element of log_alpha, u drawn from (seed, index): s = σ((log u − log(1−u) +
  // log α)/β), z = clamp(s·(r − l) + l, 0, 1). On the tape when log_alpha requires grad.
  static Tensor sample(const Tensor& log_alpha, uint64_t seed);
  // P(z ≠ 0) = σ(log α − β·log(−l/r)), on the tape.
  static Tensor keep_prob(const Tensor& log_alpha);
  // The evaluation mask of one group (no tape): the soft values σ(log α/β · 0.8), with the
  // n − round(Σ P(z ≠ 0)) smallest of them set to 0.
  static Tensor deterministic(const Tensor& log_alpha);
  // The same soft values with exactly n − keep of the smallest set to 0 (Sheared-LLaMA's exact
  // shape at finalisation: every row keeps its target count).
  static Tensor deterministic_keeping(const Tensor& log_alpha, int64_t keep);
  // log α clamped into [log 0.01, log 100] in place (after each optimizer update).
  static void clamp_(Tensor& log_alpha);
};

// σ(x) from the tape's tanh: 0.5·tanh(x/2) + 0.5.
Tensor sigmoid(const Tensor& x);

}  // namespace scion::prune
