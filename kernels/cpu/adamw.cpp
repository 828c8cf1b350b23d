#include <cmath>

#include "cpu/cpu_kernels.h"
#include "cpu/parallel.h"

namespace scion::cpu {

// PyTorch's AdamW order: decay the weight, then the Adam step with bias corrections. Each
// gradient is multiplied by grad_scale first (a clip factor folded in: the same product
// clip_grad_norm's scaling pass would store, without that pass over every gradient).
void adamw(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
           float eps, float weight_decay, float bc1, float bc2, float grad_scale) {
  const float decay = 1.f - lr * weight_decay;
  const float step_size = lr / bc1;
  const float inv_sqrt_bc2 = 1.f / std::sqrt(bc2);
  // Local restrict copies: through the lambda's by-reference captures every store to m, v or p
  // could alias the pointers themselves, and the loop would not vectorise.
  parallel_range(n, 16384, [=](int64_t i0, int64_t i1) {
    float* __restrict pp = p;
    const float* __restrict gp = g;
    float* __restrict mp = m;
    float* __restrict vp = v;
    for (int64_t i = i0; i < i1; ++i) {
      const float gi = gp[i] * grad_scale;
      const float mi = beta1 * mp[i] + (1.f - beta1) * gi;
      const float vi = beta2 * vp[i] + (1.f - beta2) * gi * gi;
      mp[i] = mi;
      vp[i] = vi;
      const float denom = std::sqrt(vi) * inv_sqrt_bc2 + eps;
      pp[i] = pp[i] * decay - step_size * mi / denom;
    }
  });
}

}  // namespace scion::cpu
