#include <algorithm>
#include <cmath>
#include <limits>

#include "cpu/cpu_kernels.h"
#include "cpu/parallel.h"
#include "cpu/vec_math.h"

namespace scion::cpu {

void softmax_rows(const float* x, float* y, int64_t rows, int64_t n, bool log) {
  parallel_range(rows, grain_for(4 * n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * n;
      float* yr = y + r * n;
      float mx = max_scaled(xr, n, 1.f);
      if (mx == -std::numeric_limits<float>::infinity()) mx = 0.f;  // fully masked row
      // The normaliser as vec_math.h's sum_exp (an f32 running sum is biased on long rows);
      // for softmax the numerators are kept in y on the way, then scaled.
      if (log) {
        const float lse = float(double(mx) + std::log(sum_exp(xr, n, 1.f, mx)));
        for (int64_t i = 0; i < n; ++i) yr[i] = xr[i] - lse;
      } else {
        const float inv = float(1.0 / sum_exp_store(xr, n, 1.f, mx, yr));
        for (int64_t i = 0; i < n; ++i) yr[i] *= inv;
      }
    }
  });
}

void softmax_rows_backward(const float* y, const float* gy, float* gx, int64_t rows, int64_t n, bool log) {
  parallel_range(rows, grain_for(3 * n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* yr = y + r * n;
      const float* gr = gy + r * n;
      float* out = gx + r * n;
      // The row's dot product summed as the forward's normaliser (vec_math.h's blocked_sum).
      if (log) {
        const float dot = float(blocked_sum(n, [&](int64_t i) { return gr[i]; }));
        for (int64_t i = 0; i < n; ++i) out[i] = gr[i] - exp_approx(yr[i]) * dot;
      } else {
        const float dot = float(blocked_sum(n, [&](int64_t i) { return gr[i] * yr[i]; }));
        for (int64_t i = 0; i < n; ++i) out[i] = yr[i] * (gr[i] - dot);
      }
    }
  });
}

}  // namespace scion::cpu
