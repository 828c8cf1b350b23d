#include <cmath>
#include <vector>

#include "cpu/cpu_kernels.h"
#include "cpu/parallel.h"

namespace scion::cpu {

void layernorm_forward(const float* x, const float* w, const float* b, float* y, float* mean,
                       float* rstd, int64_t rows, int64_t n, float eps) {
  parallel_range(rows, grain_for(5 * n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * n;
      float* yr = y + r * n;
      float m = 0.f;
      for (int64_t i = 0; i < n; ++i) m += xr[i];
      m /= float(n);
      float v = 0.f;
      for (int64_t i = 0; i < n; ++i) {
        const float d = xr[i] - m;
        v += d * d;
      }
      v /= float(n);
      const float rs = 1.f / std::sqrt(v + eps);
      for (int64_t i = 0; i < n; ++i) yr[i] = (xr[i] - m) * rs * w[i] + b[i];
      mean[r] = m;
      rstd[r] = rs;
    }
  });
}

void layernorm_backward(const float* gy, const float* x, const float* w, const float* mean,
                        const float* rstd, float* gx, float* gw, float* gb, int64_t rows, int64_t n) {
  // dx = rstd * (g*w - mean(g*w) - xhat * mean(g*w*xhat))
  parallel_range(rows, grain_for(8 * n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* g = gy + r * n;
      const float* xr = x + r * n;
      const float m = mean[r], rs = rstd[r];
      float s1 = 0.f, s2 = 0.f;
      for (int64_t i = 0; i < n; ++i) {
        const float gw_i = g[i] * w[i];
        s1 += gw_i;
        s2 += gw_i * (xr[i] - m) * rs;
      }
      s1 /= float(n);
      s2 /= float(n);
      float* out = gx + r * n;
      for (int64_t i = 0; i < n; ++i) out[i] = rs * (g[i] * w[i] - s1 - (xr[i] - m) * rs * s2);
    }
  });
  if (!gw && !gb) return;
  // Parameter gradients: column blocks, rows summed in order (deterministic).
  constexpr int64_t kCols = 64;
  const int64_t blocks = (n + kCols - 1) / kCols;
  parallel_range(blocks, 1, [&](int64_t b0, int64_t b1) {
    double aw[kCols], ab[kCols];
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t c0 = blk * kCols, c1 = std::min(n, c0 + kCols);
      for (int64_t c = c0; c < c1; ++c) aw[c - c0] = ab[c - c0] = 0.0;
      for (int64_t r = 0; r < rows; ++r) {
        const float* g = gy + r * n;
        const float* xr = x + r * n;
        const float m = mean[r], rs = rstd[r];
        for (int64_t c = c0; c < c1; ++c) {
          aw[c - c0] += g[c] * (xr[c] - m) * rs;
          ab[c - c0] += g[c];
        }
      }
      for (int64_t c = c0; c < c1; ++c) {
        if (gw) gw[c] = float(aw[c - c0]);
        if (gb) gb[c] = float(ab[c - c0]);
      }
    }
  });
}

}  // namespace scion::cpu
