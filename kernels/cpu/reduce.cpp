// Reductions. Sums over long runs add fixed-size chunks (independent of thread count), then
// add the chunk sums in order in double precision.
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/column_sums.h"
#include "cpu/cpu_kernels.h"
#include "cpu/parallel.h"

namespace scion::cpu {
namespace {
constexpr int64_t kChunk = 8192;

template <class Fn>
double chunked_sum(int64_t n, Fn&& term_sum) {
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  std::vector<double> partial(size_t(chunks > 0 ? chunks : 1), 0.0);
  parallel_range(chunks, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      const int64_t b = c * kChunk, e = std::min(n, b + kChunk);
      partial[size_t(c)] = term_sum(b, e);
    }
  });
  double s = 0.0;
  for (double p : partial) s += p;
  return s;
}

// sum of term(i) over [b, e) in 16 f64 lanes (element i to lane (i - b) % 16, the lanes added
// pairwise at the end): one f64 running sum is a chain of dependent adds that does not
// vectorise (sum_squares over the 16M gradients of the benchmark GPT took 11 ms that way).
// The order depends on b and e only.
template <class Term>
double lanes_sum(int64_t b, int64_t e, Term&& term) {
  constexpr int kLanes = 16;
  double acc[kLanes] = {};
  int64_t i = b;
  for (; i + kLanes <= e; i += kLanes)
    for (int k = 0; k < kLanes; ++k) acc[k] += term(i + k);
  double tail = 0.0;
  for (; i < e; ++i) tail += term(i);
  for (int w = kLanes / 2; w >= 1; w /= 2)
    for (int k = 0; k < w; ++k) acc[k] += acc[k + w];
  return acc[0] + tail;
}
}  // namespace

double sum_all(const float* x, int64_t n) {
  return chunked_sum(n, [&](int64_t b, int64_t e) { return lanes_sum(b, e, [&](int64_t i) { return double(x[i]); }); });
}

double sum_squares(const float* x, int64_t n) {
  return chunked_sum(n, [&](int64_t b, int64_t e) {
    return lanes_sum(b, e, [&](int64_t i) { return double(x[i]) * double(x[i]); });
  });
}

void reduce_sum(const float* x, float* y, int64_t outer, int64_t n, int64_t inner) {
  if (inner == 1) {
    parallel_range(outer, grain_for(n), [&](int64_t o0, int64_t o1) {
      for (int64_t o = o0; o < o1; ++o) {
        const float* p = x + o * n;
        y[o] = float(lanes_sum(0, n, [&](int64_t i) { return double(p[i]); }));
      }
    });
    return;
  }
  // Reduce the middle axis: parallel over (outer, inner-block); each output sums in order.
  parallel_range(outer, grain_for(n * inner), [&](int64_t o0, int64_t o1) {
    std::vector<double> acc(static_cast<size_t>(inner));
    for (int64_t o = o0; o < o1; ++o) {
      std::fill(acc.begin(), acc.end(), 0.0);
      for (int64_t i = 0; i < n; ++i) {
        const float* p = x + (o * n + i) * inner;
        for (int64_t j = 0; j < inner; ++j) acc[size_t(j)] += p[j];
      }
      for (int64_t j = 0; j < inner; ++j) y[o * inner + j] = float(acc[size_t(j)]);
    }
  });
}

void reduce_max(const float* x, float* y, int64_t* argmax, int64_t outer, int64_t n, int64_t inner) {
  parallel_range(outer * inner, grain_for(n), [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) {
      const int64_t o = k / inner, j = k % inner;
      const float* p = x + o * n * inner + j;
      float best = -std::numeric_limits<float>::infinity();
      int64_t bi = 0;
      for (int64_t i = 0; i < n; ++i) {
        const float v = p[i * inner];
        if (v > best || std::isnan(v)) {
          best = v;
          bi = i;
          if (std::isnan(v)) break;
        }
      }
      y[k] = best;
      argmax[k] = bi;
    }
  });
}

void sum_rows(const float* gy, float* gb, int64_t rows, int64_t n) {
  column_sums(rows, n, gb, [gy, n](int64_t r, int64_t c) { return gy[r * n + c]; });
}

void add_bias_rows(float* y, const float* bias, int64_t rows, int64_t n) {
  parallel_range(rows, grain_for(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* p = y + r * n;
      for (int64_t c = 0; c < n; ++c) p[c] += bias[c];
    }
  });
}

}  // namespace scion::cpu
