// GEMM, row-major throughout: f32 through oneDNN's matmul (measured faster than OpenBLAS on
// the model's shapes), or OpenBLAS; bf16 inputs through gemm_bf16.cpp.
//
// Threading: oneTBB owns all parallelism. OpenBLAS runs single-threaded and large products
// are split into row (or column) blocks, one BLAS call per task. Letting OpenBLAS thread on
// its own serialises concurrent callers (attention heads, flow-graph nodes) behind its
// server lock and was measured 7x slower for the attention kernel on 2 cores. Each C element
// is still computed by one BLAS call with the same K loop, so results do not depend on the
// thread count.
#include <cblas.h>

#include <algorithm>
#include <mutex>

#include "cpu/cpu_kernels.h"
#include "cpu/gemm_blocks.h"
#include "cpu/parallel.h"

extern "C" void openblas_set_num_threads(int);

namespace scion::cpu {
namespace {

// The f32 products go to oneDNN (gemm_bf16.cpp's blocks with f32 operands); the OpenBLAS
// path below stays as the reference the benchmarks compare against and as the fallback to
// flip this to if a machine's oneDNN is slower.
constexpr bool kF32ThroughOneDnn = true;

void blas_single_threaded() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

void sgemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, int(M), int(N),
              int(K), alpha, A, int(lda), B, int(ldb), beta, C, int(ldc));
}

}  // namespace

void gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
          const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  blas_single_threaded();
  if (M == 0 || N == 0) return;
  if (K == 0) {  // BLAS may skip the beta scaling when K == 0
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
    return;
  }
  if (gemm_bf16()) return gemm_bf16_inputs(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  // f32 through oneDNN's matmul: faster than OpenBLAS on every shape of the benchmark GPT's
  // step (1.06x-1.9x, bench_core and docs/benchmarks.md), in the same shape-only blocks.
  if (kF32ThroughOneDnn) return gemm_f32_onednn(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  for_each_gemm_block(M, N, K, [&](int64_t i0, int64_t m, int64_t j0, int64_t n) {
    sgemm(ta, tb, m, n, K, alpha, ta ? A + i0 : A + i0 * lda, lda, tb ? B + j0 * ldb : B + j0, ldb, beta,
          C + i0 * ldc + j0, ldc);
  });
}

void gemm_batched(bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K, float alpha,
                  const float* A, int64_t lda, int64_t sa, const float* B, int64_t ldb, int64_t sb,
                  float beta, float* C, int64_t ldc, int64_t sc) {
  parallel_range(batch, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t i = b0; i < b1; ++i)
      gemm(ta, tb, M, N, K, alpha, A + i * sa, lda, B + i * sb, ldb, beta, C + i * sc, ldc);
  });
}

void set_blas_threads(int) { blas_single_threaded(); }

}  // namespace scion::cpu
