// How a GEMM is cut for the threads, shared by the f32 (gemm_f32.cpp) and the bf16
// (gemm_bf16.cpp) paths: blocks of C, or slices of K, whose bounds depend only on the shape,
// never on the thread count, so one thread or two run the same single-threaded calls and the
// bits are the same.
#pragma once
#include <algorithm>
#include <cstdint>

#include "cpu/parallel.h"

namespace scion::cpu {

// A product with no output or no inner size, done here: C = beta C when K == 0 (a library may
// skip the beta scaling then). True when there is nothing left for a GEMM library to do.
inline bool gemm_degenerate(int64_t M, int64_t N, int64_t K, float beta, float* C, int64_t ldc) {
  if (M == 0 || N == 0) return true;
  if (K != 0) return false;
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
  return true;
}

// Block edge for splitting n rows or columns into at most ~32 blocks of >= 64 (a multiple of 16).
inline int64_t gemm_block_edge(int64_t n) {
  int64_t b = (n + 31) / 32;
  b = (b + 15) / 16 * 16;
  return b < 64 ? 64 : b;
}

// Calls fn(i0, m, j0, n) for each block of rows [i0, i0 + m) and columns [j0, j0 + n) of an
// M x N product with inner size K: one block when the product is small, else row blocks
// (M >= N) or column blocks, in parallel.
template <class F>
void for_each_gemm_block(int64_t M, int64_t N, int64_t K, F&& fn) {
  const double flops = 2.0 * double(M) * double(N) * double(K);
  if (flops < 4e6 || (M < 128 && N < 128)) return fn(int64_t(0), M, int64_t(0), N);
  const bool rows = M >= N;
  const int64_t total = rows ? M : N, edge = gemm_block_edge(total), blocks = (total + edge - 1) / edge;
  parallel_range(blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const int64_t at = b * edge, len = std::min(total, at + edge) - at;
      if (rows)
        fn(at, len, int64_t(0), N);
      else
        fn(int64_t(0), M, at, len);
    }
  });
}

// One single-threaded product C = alpha op(A) op(B) + beta C of a block; In is float or
// uint16_t (bf16 bits).
template <class In>
using GemmBlockFn = void (*)(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const In* A,
                             int64_t lda, const In* B, int64_t ldb, float beta, float* C, int64_t ldc);

// The whole product, one `block` call per piece: slices of K when the inner size dwarfs the
// output (each slice into its own partial, the partials added in slice order), else the C
// blocks of for_each_gemm_block. gemm_blocks.cpp; instantiated for float and uint16_t.
template <class In>
void gemm_in_blocks(GemmBlockFn<In> block, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                    const In* A, int64_t lda, const In* B, int64_t ldb, float beta, float* C, int64_t ldc);

}  // namespace scion::cpu
