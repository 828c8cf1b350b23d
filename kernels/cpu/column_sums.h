// out[c] = sum over rows r of term(r, c), for a [rows, n] layout: column blocks in parallel,
// each column summing its rows in order in double, so the result does not depend on the
// thread count (a bias gradient, RMSNorm's weight gradient).
#pragma once
#include <algorithm>
#include <cstdint>

#include "cpu/parallel.h"

namespace scion::cpu {

template <class Term>
void column_sums(int64_t rows, int64_t n, float* out, Term&& term) {
  constexpr int64_t kCols = 64;
  const int64_t blocks = (n + kCols - 1) / kCols;
  parallel_range(blocks, 1, [&](int64_t b0, int64_t b1) {
    double acc[kCols];
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t c0 = b * kCols, c1 = std::min(n, c0 + kCols);
      for (int64_t c = c0; c < c1; ++c) acc[c - c0] = 0.0;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = c0; c < c1; ++c) acc[c - c0] += term(r, c);
      for (int64_t c = c0; c < c1; ++c) out[c] = float(acc[c - c0]);
    }
  });
}

}  // namespace scion::cpu
