// The bf16 GEMM behind `precision = "bf16"` on the CPU: both inputs rounded to bf16 (round to
// nearest even), the products accumulated in f32 by oneDNN's matmul (AVX512-BF16 where the
// CPU has it), C stays f32. Master weights, optimizer state, LayerNorm, softmax and losses
// never see bf16: only the GEMM inputs do, as in PyTorch's CPU autocast.
//
// Without bf16 hardware (oneDNN 2.6 builds bf16 matmuls only from AVX-512 up; an AVX2 CPU such
// as AMD Zen 3 has none), or with SCION_CPU_BF16=emulate in the environment, the same GEMM is
// emulated: the inputs are rounded to bf16 but held as f32 (the rounded values, exactly), and
// multiplied by the f32 GEMM (gemm_f32.cpp). Each product of two bf16 values is exact in f32,
// so only the order of the f32 accumulation differs from the hardware path; the semantics
// (bf16 inputs, f32 accumulation) and the thread-count determinism are the same. An operand
// rounded once (pack_bf16_matrix) is multiplied as it is, so the emulation costs f32's time
// plus one rounding pass per operand.
//
// Determinism is kept as in the f32 GEMM: the inputs are converted once per call, then C is
// cut into the same shape-only blocks (gemm_blocks.h), each computed by one single-threaded
// oneDNN matmul, so the bits do not depend on the thread count.
#include <algorithm>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "cpu/buffer_pool.h"
#include "cpu/cpu_kernels.h"
#include "cpu/gemm_blocks.h"
#include "cpu/onednn_matmul.h"
#include "cpu/parallel.h"

namespace scion::cpu {
namespace {

// rows x cols of a row-major matrix with leading dimension ld, packed (ld = cols) as bf16
// bits (Out = uint16_t) or as the rounded values in f32 (Out = float, the emulation).
template <class Out>
void pack_bf16(const float* src, int64_t rows, int64_t cols, int64_t ld, Out* dst) {
  parallel_range(rows, std::max<int64_t>(1, 16384 / std::max<int64_t>(cols, 1)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* s = src + r * ld;
      Out* d = dst + r * cols;
      for (int64_t c = 0; c < cols; ++c) {
        if constexpr (std::is_same_v<Out, float>)
          d[c] = bf16_to_f32(f32_to_bf16(s[c]));  // the emulation's operand: the rounded value
        else
          d[c] = f32_to_bf16(s[c]);
      }
    }
  });
}

// The packed inputs of one call: bf16 bits, or (emulated) the rounded values as f32.
struct Packed {
  std::vector<uint16_t> a, b;
  std::vector<float> fa, fb;
};
BufferPool<Packed> g_packed;

// Can oneDNN build a bf16 matmul here, and does the environment let it?
bool probe_native_bf16() {
  if (const char* e = std::getenv("SCION_CPU_BF16")) {
    const std::string v(e);
    if (v == "emulate") return false;
    if (!v.empty() && v != "native")
      throw std::runtime_error("SCION_CPU_BF16='" + v + "': expected \"native\" or \"emulate\" (or unset)");
  }
  return onednn_builds_bf16_matmul();
}

}  // namespace

bool gemm_bf16_native() {
  static const bool native = probe_native_bf16();
  return native;
}

int64_t bf16_operand_bytes() { return gemm_bf16_native() ? 2 : 4; }

void pack_bf16_matrix(const float* src, int64_t rows, int64_t cols, int64_t ld, void* dst) {
  if (gemm_bf16_native())
    pack_bf16(src, rows, cols, ld, static_cast<uint16_t*>(dst));
  else
    pack_bf16(src, rows, cols, ld, static_cast<float*>(dst));
}

void gemm_bf16_packed(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* a, int64_t la,
                      const void* b, int64_t lb, float beta, float* C, int64_t ldc) {
  if (gemm_bf16_native())
    return gemm_in_blocks<uint16_t>(onednn_matmul_bf16, ta, tb, M, N, K, alpha, static_cast<const uint16_t*>(a), la,
                                    static_cast<const uint16_t*>(b), lb, beta, C, ldc);
  // Emulated: the copies already hold the rounded values in f32.
  gemm_f32(ta, tb, M, N, K, alpha, static_cast<const float*>(a), la, static_cast<const float*>(b), lb, beta, C, ldc);
}

void gemm_bf16_inputs(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
                      const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  // Packed copies keep each input's layout (transposed or not) with a compact leading dim.
  const int64_t a_rows = ta ? K : M, a_cols = ta ? M : K, b_rows = tb ? N : K, b_cols = tb ? K : N;
  auto buf = g_packed.acquire();
  void *pa, *pb;
  if (gemm_bf16_native()) {
    buf->a.resize(size_t(a_rows * a_cols));
    buf->b.resize(size_t(b_rows * b_cols));
    pa = buf->a.data(), pb = buf->b.data();
  } else {
    buf->fa.resize(size_t(a_rows * a_cols));
    buf->fb.resize(size_t(b_rows * b_cols));
    pa = buf->fa.data(), pb = buf->fb.data();
  }
  pack_bf16_matrix(A, a_rows, a_cols, lda, pa);
  pack_bf16_matrix(B, b_rows, b_cols, ldb, pb);
  gemm_bf16_packed(ta, tb, M, N, K, alpha, pa, a_cols, pb, b_cols, beta, C, ldc);
  g_packed.release(std::move(buf));
}

}  // namespace scion::cpu
