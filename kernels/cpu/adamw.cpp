#include <cmath>

#include "cpu/cpu_kernels.h"
#include "cpu/parallel.h"

namespace scion::cpu {

// PyTorch's AdamW order: decay the weight, then the Adam step with bias corrections.
void adamw(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
           float eps, float weight_decay, float bc1, float bc2) {
  const float decay = 1.f - lr * weight_decay;
  const float step_size = lr / bc1;
  const float inv_sqrt_bc2 = 1.f / std::sqrt(bc2);
  parallel_range(n, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const float gi = g[i];
      const float mi = beta1 * m[i] + (1.f - beta1) * gi;
      const float vi = beta2 * v[i] + (1.f - beta2) * gi * gi;
      m[i] = mi;
      v[i] = vi;
      const float denom = std::sqrt(vi) * inv_sqrt_bc2 + eps;
      p[i] = p[i] * decay - step_size * mi / denom;
    }
  });
}

}  // namespace scion::cpu
