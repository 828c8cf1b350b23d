// The K-sliced products of gemm_in_blocks, and its choice between K slices and C blocks.
#include "cpu/gemm_blocks.h"

#include <vector>

#include "cpu/buffer_pool.h"

namespace scion::cpu {
namespace {

// Products whose inner size dwarfs their output (the fused LM head's dx = G·W: 256 x 256 from
// K = 50304) split K instead of C: C-blocks would each re-read all of op(B) (51 MB per
// block there, so four blocks made the product memory-bound at half the speed of its
// neighbours). Slice p computes op(A)[:, kp] op(B)[kp, :] into its own partial; the partials
// are added in slice order, so the bits depend on the shape only.
constexpr int64_t kSliceK = 4096;
bool split_k(int64_t M, int64_t N, int64_t K) {
  return K >= 4 * kSliceK && K >= 32 * std::max(M, N) && M * N <= (1 << 18);
}

BufferPool<std::vector<float>> g_partials;

template <class In>
void gemm_split_k(GemmBlockFn<In> block, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                  const In* A, int64_t lda, const In* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  const int64_t parts = (K + kSliceK - 1) / kSliceK, MN = M * N;
  auto buf = g_partials.acquire();
  buf->resize(size_t(parts * MN));
  float* P = buf->data();
  parallel_range(parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t k0 = p * kSliceK, kn = std::min(K, k0 + kSliceK) - k0;
      block(ta, tb, M, N, kn, alpha, ta ? A + k0 * lda : A + k0, lda, tb ? B + k0 : B + k0 * ldb, ldb, 0.f,
            P + p * MN, N);
    }
  });
  parallel_range(M, std::max<int64_t>(1, 4096 / std::max<int64_t>(N, 1)), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      float* c = C + i * ldc;
      for (int64_t j = 0; j < N; ++j) {
        float acc = P[i * N + j];
        for (int64_t p = 1; p < parts; ++p) acc += P[p * MN + i * N + j];
        c[j] = beta == 0.f ? acc : beta * c[j] + acc;
      }
    }
  });
  g_partials.release(std::move(buf));
}

}  // namespace

// op(A) rows i0.. sit at column i0 of the stored A when it is transposed, at row i0 if not;
// op(B) columns j0.. likewise.
template <class In>
void gemm_in_blocks(GemmBlockFn<In> block, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                    const In* A, int64_t lda, const In* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (split_k(M, N, K)) return gemm_split_k(block, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  for_each_gemm_block(M, N, K, [&](int64_t i0, int64_t m, int64_t j0, int64_t n) {
    block(ta, tb, m, n, K, alpha, ta ? A + i0 : A + i0 * lda, lda, tb ? B + j0 * ldb : B + j0, ldb, beta,
          C + i0 * ldc + j0, ldc);
  });
}

template void gemm_in_blocks<float>(GemmBlockFn<float>, bool, bool, int64_t, int64_t, int64_t, float, const float*,
                                    int64_t, const float*, int64_t, float, float*, int64_t);
template void gemm_in_blocks<uint16_t>(GemmBlockFn<uint16_t>, bool, bool, int64_t, int64_t, int64_t, float,
                                       const uint16_t*, int64_t, const uint16_t*, int64_t, float, float*, int64_t);

}  // namespace scion::cpu
