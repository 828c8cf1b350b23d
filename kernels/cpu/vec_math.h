// exp and tanh written as plain arithmetic so the compiler vectorises the loops that call them
// (glibc's vector expf is only used under -ffast-math, which Scion does not build with).
// Accuracy: relative error below 2e-7 over the float range, i.e. about 1-2 ulp.
#pragma once
#include <cstdint>
#include <cstring>

namespace scion::cpu {

inline float exp_approx(float x_in) {
  // Below -87.3 the result is 0 (exactly, so masked scores vanish; subnormals are flushed),
  // above 88.7 it is clamped to the largest finite power range.
  const float x = x_in < -87.33654f ? -87.33654f : (x_in > 88.72283f ? 88.72283f : x_in);
  // x = n ln2 + r, |r| <= ln2/2, with ln2 split in two for an exact product.
  // Round to nearest by the 1.5*2^23 trick (plain adds vectorise; roundeven does not here).
  const float n = (x * 1.44269504088896341f + 12582912.f) - 12582912.f;
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  // e^r by a degree-6 polynomial (Taylor coefficients, refined).
  float p = 1.3888949e-3f;
  p = p * r + 8.3333963e-3f;
  p = p * r + 4.1666646e-2f;
  p = p * r + 1.6666667e-1f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // scale by 2^n through the exponent bits
  // (A NaN input keeps n NaN, and converting NaN to int is undefined: the exponent is taken
  // from 0 instead, and p, NaN already, carries the NaN out. Found by UBSan.)
  const int32_t bits = (int32_t(n == n ? n : 0.f) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, 4);
  return x_in < -87.33654f ? 0.f : p * scale;
}

// sum_i exp(x[i] * scale - shift) for a softmax over a vocabulary: tens of thousands of terms
// of similar size. One f32 running sum rounds each addition at the size of the total, which
// biases it (1.4e-4 nats low on a flat 50257-way row); one f64 sum per lane is exact enough
// but does not vectorise (measured 11x slower than the f32 loop on a 50304-wide row). So:
// blocks of 256 terms, each of 16 f32 lanes adding 16 of them (vector adds, rounding at the
// size of 16 terms only), then every lane's block total added to its own f64 sum. The order
// is fixed by n alone (term i goes to lane i % 16 of block i / 256; the tail to one f64
// sum; the lanes combined pairwise), so one row gives the same bits on any thread count.
// blocked_sum(n, term) is that sum of the f32 values term(0..n-1); sum_exp_store with `out`
// also stores the terms there (out may be x): the softmax numerators.
template <class Term>
inline double blocked_sum(int64_t n, Term&& term) {
  constexpr int kLanes = 16, kPerLane = 16;
  double acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes * kPerLane <= n; i += kLanes * kPerLane) {
    float part[kLanes] = {};
    for (int b = 0; b < kPerLane; ++b)
      for (int k = 0; k < kLanes; ++k) part[k] += term(i + b * kLanes + k);
    for (int k = 0; k < kLanes; ++k) acc[k] += double(part[k]);
  }
  double tail = 0.0;
  for (; i < n; ++i) tail += double(term(i));
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int k = 0; k < w; ++k) acc[k] += acc[k + w];
  return acc[0] + tail;
}
inline double sum_exp_store(const float* x, int64_t n, float scale, float shift, float* out) {
  if (!out) return blocked_sum(n, [&](int64_t i) { return exp_approx(x[i] * scale - shift); });
  return blocked_sum(n, [&](int64_t i) {
    const float e = exp_approx(x[i] * scale - shift);
    out[i] = e;
    return e;
  });
}
inline double sum_exp(const float* x, int64_t n, float scale, float shift) {
  return sum_exp_store(x, n, scale, shift, nullptr);
}

// max_i x[i] * scale (-inf for n = 0) in 16 lanes, so it vectorises (std::max's
// NaN-ordering does not); NaN entries are skipped, as std::max(mx, x) skips them. The lanes are
// one GCC/Clang vector: the array form vectorised alone but not once inlined into the
// cross-entropy's row loop, where g++ 12 left it scalar (compare and cmov per element).
inline float max_scaled(const float* x, int64_t n, float scale) {
  constexpr int kLanes = 16;
  typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));
  Lanes m, s;
  for (int k = 0; k < kLanes; ++k) m[k] = -__builtin_inff(), s[k] = scale;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
    Lanes v;
    std::memcpy(&v, x + i, sizeof v);
    v = v * s;
    m = v > m ? v : m;
  }
  float mx = -__builtin_inff();
  for (; i < n; ++i) mx = x[i] * scale > mx ? x[i] * scale : mx;
  for (int k = 0; k < kLanes; ++k) mx = m[k] > mx ? m[k] : mx;
  return mx;
}

inline float tanh_approx(float x) {
  // tanh(x) = sign(x) (1 - e^{-2|x|}) / (1 + e^{-2|x|}) (no overflow); near 0, where that
  // form cancels, an odd Taylor polynomial. Both are computed and one is selected, so the
  // loop stays branch-free and vectorises.
  const float ax = x < 0.f ? -x : x;
  const float e = exp_approx(-2.f * ax);
  const float big = (1.f - e) / (1.f + e);
  const float x2 = x * x;
  const float small = ax * (1.f + x2 * (-0.33333334f + x2 * (0.13333334f + x2 * -0.053968254f)));
  const float t = ax < 0.0625f ? small : big;
  return x < 0.f ? -t : t;
}

}  // namespace scion::cpu
