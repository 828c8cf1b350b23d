// Rotary position embedding in Hugging Face's half-rotation convention (rotate_half): the pair
// (x[i], x[i + D/2]) of each head turns by the angle of its position and frequency i,
//   y[i] = x[i] cos - x[i + D/2] sin,   y[i + D/2] = x[i + D/2] cos + x[i] sin,
// and `inverse` turns by the opposite angle (the backward: the rotation's transpose).
#include "cpu/cpu_kernels.h"
#include "cpu/parallel.h"

namespace scion::cpu {

void rotary(const float* x, const float* cos, const float* sin, float* y, int64_t rows, int64_t T, int64_t H,
            int64_t D, bool inverse) {
  const int64_t half = D / 2;
  const float sign = inverse ? -1.f : 1.f;
  parallel_range(rows, grain_for(3 * H * D), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* c = cos + (r % T) * half;
      const float* s = sin + (r % T) * half;
      for (int64_t h = 0; h < H; ++h) {
        const float* xa = x + (r * H + h) * D;
        const float* xb = xa + half;
        float* ya = y + (r * H + h) * D;
        float* yb = ya + half;
        for (int64_t i = 0; i < half; ++i) {
          const float a = xa[i], b = xb[i], si = sign * s[i];
          ya[i] = a * c[i] - b * si;
          yb[i] = b * c[i] + a * si;
        }
      }
    }
  });
}

}  // namespace scion::cpu
