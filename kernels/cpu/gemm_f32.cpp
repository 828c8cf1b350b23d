// The f32 GEMM: C cut into the shape-only blocks of gemm_blocks.h, each multiplied by one
// single-threaded call of oneDNN's f32 matmul (about twice Debian's OpenBLAS on every shape of
// the benchmark step; bench_core keeps raw cblas_sgemm as the reference) or, with
// SCION_CPU_GEMM=openblas, of OpenBLAS. The bf16 GEMM's f32 emulation (gemm_bf16.cpp) runs
// here too.
#include <cblas.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "cpu/cpu_kernels.h"
#include "cpu/gemm_blocks.h"
#include "cpu/onednn_matmul.h"

extern "C" void openblas_set_num_threads(int);

namespace scion::cpu {
namespace {

void f32_block(bool ta, bool tb, int64_t m, int64_t n, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (gemm_f32_engine() == GemmEngine::openblas) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, blasint(m),
                blasint(n), blasint(K), alpha, A, blasint(lda), B, blasint(ldb), beta, C, blasint(ldc));
    return;
  }
  onednn_matmul_f32(ta, tb, m, n, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace

GemmEngine gemm_f32_engine() {
  static const GemmEngine e = [] {
    if (const char* v = std::getenv("SCION_CPU_GEMM")) {
      const std::string s(v);
      if (s == "onednn") return GemmEngine::onednn;
      if (s == "openblas") {
        openblas_set_num_threads(1);  // one single-threaded call per block, as oneDNN's
        return GemmEngine::openblas;
      }
      if (!s.empty())
        throw std::runtime_error("SCION_CPU_GEMM='" + s + "': expected \"onednn\" or \"openblas\" (or unset)");
    }
    return GemmEngine::onednn;
  }();
  return e;
}

void gemm_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
              const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  if (gemm_degenerate(M, N, K, beta, C, ldc)) return;
  gemm_in_blocks<float>(f32_block, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

}  // namespace scion::cpu
