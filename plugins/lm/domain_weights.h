// Sheared-LLaMA's dynamic batch loading (Xia et al., ICLR 2024, Algorithm 1): domain sampling
// weights moved toward the domains whose validation loss is furthest above its reference.
#pragma once
#include <cstdint>
#include <vector>

namespace scion::lm {

struct DynamicLoading {
  double eta = 1.0;         // step size η on the excess loss (the reference code's 1)
  double smoothing = 1e-4;  // c: w ← (1 − c)·w + c/k keeps every domain drawn (the code's 1e-4)
  bool clip = true;         // Δ = max(ℓ − ℓ_ref, 0) (Algorithm 1); false: the code's unclipped Δ
};

// w ← normalize(w · exp(η·Δ)), then smoothed: the weights after one evaluation with per-domain
// validation losses `loss` against `reference` (all three in the same domain order).
std::vector<double> update_domain_weights(const std::vector<double>& w, const std::vector<double>& loss,
                                          const std::vector<double>& reference, const DynamicLoading& o);

// The domain of global window `index` under weights `w` (summing to 1): a pure function of
// (seed, index), so every rank draws the same domains and a resumed run the same ones again.
int64_t draw_domain(const std::vector<double>& w, uint64_t seed, uint64_t index);

}  // namespace scion::lm
