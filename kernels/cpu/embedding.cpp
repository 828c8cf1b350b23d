#include <cstring>

#include "cpu/cpu_kernels.h"
#include "cpu/parallel.h"

namespace scion::cpu {

void embedding_forward(const float* table, int64_t vocab, int64_t dim, const int64_t* ids, int64_t n,
                       float* y, int64_t* bad) {
  *bad = -1;
  for (int64_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= vocab) {
      *bad = i;
      return;
    }
  parallel_range(n, grain_for(dim), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      std::memcpy(y + i * dim, table + ids[i] * dim, size_t(dim) * sizeof(float));
  });
}

void embedding_backward(const float* gy, const int64_t* ids, int64_t n, int64_t dim, float* g_table) {
  // Parallel over column blocks: each column's scatter-add runs over positions in order, so
  // repeated ids sum deterministically and no two tasks touch the same element.
  constexpr int64_t kCols = 64;
  const int64_t blocks = (dim + kCols - 1) / kCols;
  parallel_range(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t blk = b0; blk < b1; ++blk) {
      const int64_t c0 = blk * kCols, c1 = std::min(dim, c0 + kCols);
      for (int64_t i = 0; i < n; ++i) {
        float* dst = g_table + ids[i] * dim;
        const float* src = gy + i * dim;
        for (int64_t c = c0; c < c1; ++c) dst[c] += src[c];
      }
    }
  });
}

}  // namespace scion::cpu
