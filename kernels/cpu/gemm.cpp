// The GEMM entry points: the precision the caller asks for picks the f32 product
// (gemm_f32.cpp) or the bf16 one (gemm_bf16.cpp); batches run their items in parallel.
//
// OpenBLAS is still called directly elsewhere (TRIME's tiles) and is held to one thread
// here: letting it thread on its own serialises concurrent callers behind its server lock
// (measured 7x slower for attention on 2 cores).
#include <mutex>

#include "cpu/cpu_kernels.h"
#include "cpu/gemm_blocks.h"
#include "cpu/parallel.h"

extern "C" void openblas_set_num_threads(int);

namespace scion::cpu {
namespace {

void blas_single_threaded() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

}  // namespace

void gemm(MatmulPrecision precision, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  blas_single_threaded();
  if (gemm_degenerate(M, N, K, beta, C, ldc)) return;
  if (precision == MatmulPrecision::bf16) return gemm_bf16_inputs(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
  gemm_f32(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void gemm_batched(MatmulPrecision precision, bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K,
                  float alpha, const float* A, int64_t lda, int64_t sa, const float* B, int64_t ldb, int64_t sb,
                  float beta, float* C, int64_t ldc, int64_t sc) {
  parallel_range(batch, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t i = b0; i < b1; ++i)
      gemm(precision, ta, tb, M, N, K, alpha, A + i * sa, lda, B + i * sb, ldb, beta, C + i * sc, ldc);
  });
}

void set_blas_threads(int) { blas_single_threaded(); }

}  // namespace scion::cpu
