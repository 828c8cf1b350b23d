// One GEMM block through oneDNN's matmul, single-threaded (oneTBB owns the parallelism): the
// block function of the f32 (gemm_f32.cpp) and bf16 (gemm_bf16.cpp) products. C is f32; the
// inputs are f32, or bf16 bits. A primitive is created once per (shape, transposes, leading
// dims, alpha, beta, input type) and each call brings its own scratchpad, so blocks run
// concurrently.
#pragma once
#include <cstdint>

namespace scion::cpu {

void onednn_matmul_f32(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                       const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
void onednn_matmul_bf16(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const uint16_t* A,
                        int64_t lda, const uint16_t* B, int64_t ldb, float beta, float* C, int64_t ldc);
// Whether oneDNN builds a bf16 matmul on this CPU (2.6 does from AVX-512 up), asked with a
// small product.
bool onednn_builds_bf16_matmul();

}  // namespace scion::cpu
