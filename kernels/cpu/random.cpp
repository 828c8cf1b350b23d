// Counter-based random numbers: element i of a stream with seed s is a pure function of
// (s, i), so random tensors and dropout masks are identical for any thread count and can be
// regenerated on another device bit for bit.
#include <cmath>

#include "cpu/cpu_kernels.h"
#include "cpu/parallel.h"
#include "scion/random.h"

namespace scion::cpu {

void fill_normal(float* y, int64_t n, uint64_t seed, float mean, float std) {
  parallel_range(n, 8192, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) y[i] = mean + std * random_normal(seed, uint64_t(i));
  });
}

void fill_uniform(float* y, int64_t n, uint64_t seed, float lo, float hi) {
  parallel_range(n, 8192, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) y[i] = lo + (hi - lo) * random_uniform(seed, uint64_t(i));
  });
}

void fill_randint(int64_t* y, int64_t n, uint64_t seed, int64_t lo, int64_t hi) {
  const uint64_t range = uint64_t(hi - lo);
  parallel_range(n, 8192, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) y[i] = lo + int64_t(random_bits(seed, uint64_t(i)) % range);
  });
}

void dropout(const float* x, float* y, uint8_t* mask, int64_t n, float p, uint64_t seed) {
  const float scale = 1.f / (1.f - p);
  parallel_range(n, 8192, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const bool keep = random_uniform(seed, uint64_t(i)) >= p;
      mask[i] = keep;
      y[i] = keep ? x[i] * scale : 0.f;
    }
  });
}

}  // namespace scion::cpu
