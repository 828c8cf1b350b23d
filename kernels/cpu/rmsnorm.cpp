// RMS normalisation over the last axis (Llama's RMSNorm): y = x * rstd * w with
// rstd = 1 / sqrt(mean(x^2) + eps), in f32. Rows in parallel; each row's loops are plain
// contiguous sums and products the compiler vectorises, as layernorm.cpp's.
#include <algorithm>
#include <cmath>

#include "cpu/column_sums.h"
#include "cpu/cpu_kernels.h"
#include "cpu/parallel.h"

namespace scion::cpu {

void rmsnorm_forward(const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t n, float eps) {
  parallel_range(rows, grain_for(3 * n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * n;
      float* yr = y + r * n;
      float ss = 0.f;
      for (int64_t i = 0; i < n; ++i) ss += xr[i] * xr[i];
      const float rs = 1.f / std::sqrt(ss / float(n) + eps);
      for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] * rs * w[i];
      rstd[r] = rs;
    }
  });
}

void rmsnorm_backward(const float* gy, const float* x, const float* w, const float* rstd, float* gx, float* gw,
                      int64_t rows, int64_t n) {
  // dx = rstd * (g*w - xhat * mean(g*w*xhat)), xhat = x * rstd
  parallel_range(rows, grain_for(6 * n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* g = gy + r * n;
      const float* xr = x + r * n;
      const float rs = rstd[r];
      float s = 0.f;
      for (int64_t i = 0; i < n; ++i) s += g[i] * w[i] * xr[i] * rs;
      s /= float(n);
      float* out = gx + r * n;
      for (int64_t i = 0; i < n; ++i) out[i] = rs * (g[i] * w[i] - xr[i] * rs * s);
    }
  });
  if (!gw) return;
  // dw[c] = sum_r g[r,c] * xhat[r,c], rows summed in order (deterministic).
  column_sums(rows, n, gw, [&](int64_t r, int64_t c) { return gy[r * n + c] * x[r * n + c] * rstd[r]; });
}

}  // namespace scion::cpu
