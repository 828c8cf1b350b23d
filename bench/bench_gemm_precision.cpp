// The matrix products of the CPU benchmark GPT's training step (bench_gpt_train: 4 x 256,
// batch 8 x 128 tokens, vocabulary 50304; the fused head's 512-row chunks), each timed three
// ways in one run, two threads by default: f32 (oneDNN), bf16 on operands rounded beforehand
// (what linear and the fused head do since session 9: each operand rounded once for its
// products) and bf16 rounding both operands inside the call (what the GEMM-bound ceiling of
// bench_gpt_train times). The fastest of 8 calls after one warm-up: noise only adds time.
//   bench_gemm_precision [--threads N]
#include <tbb/global_control.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cpu/cpu_kernels.h"

using namespace scion::cpu;

namespace {
double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

template <class F>
double fastest(F&& f) {
  f();
  double best = 1e30;
  for (int r = 0; r < 8; ++r) {
    const double t0 = now();
    f();
    best = std::min(best, now() - t0);
  }
  return best;
}
}  // namespace

int main(int argc, char** argv) {
  int threads = 2;
  for (int i = 1; i + 1 < argc; ++i)
    if (std::string(argv[i]) == "--threads") threads = std::atoi(argv[i + 1]);
  tbb::global_control gc(tbb::global_control::max_allowed_parallelism, size_t(threads));
  struct Shape {
    const char* what;
    int64_t M, N, K;
    bool ta, tb;
  };
  const Shape shapes[] = {
      {"c_attn forward", 1024, 768, 256, false, true},  {"c_fc forward", 1024, 1024, 256, false, true},
      {"mlp proj forward", 1024, 256, 1024, false, true}, {"c_attn dx", 1024, 256, 768, false, false},
      {"c_attn dW", 768, 256, 1024, true, false},       {"mlp proj dW", 256, 1024, 1024, true, false},
      {"head logits", 512, 50304, 256, false, true},    {"head dx (K split)", 512, 256, 50304, false, false},
      {"head dW", 50304, 256, 512, true, false},
  };
  std::printf("threads %d; GFLOP/s, fastest of 8; bf16 %s\n", threads,
              gemm_bf16_native() ? "in hardware (oneDNN)" : "EMULATED in f32 (no bf16 GEMM on this CPU)");
  std::printf("%-18s %6s %6s %6s | %8s | %10s %6s | %10s %6s\n", "product", "M", "N", "K", "f32", "bf16 pre", "x f32",
              "bf16 call", "x f32");
  for (const Shape& s : shapes) {
    const int64_t a_rows = s.ta ? s.K : s.M, a_cols = s.ta ? s.M : s.K, b_rows = s.tb ? s.N : s.K,
                  b_cols = s.tb ? s.K : s.N;
    std::vector<float> A(size_t(a_rows * a_cols)), B(size_t(b_rows * b_cols)), C(size_t(s.M * s.N));
    for (size_t i = 0; i < A.size(); ++i) A[i] = float(int(i % 97) - 48) / 64.f;
    for (size_t i = 0; i < B.size(); ++i) B[i] = float(int(i % 89) - 44) / 64.f;
    // Rounded copies: bf16 bits, or the rounded values as f32 where bf16 is emulated.
    std::vector<float> Ab(A.size()), Bb(B.size());
    pack_bf16_matrix(A.data(), a_rows, a_cols, a_cols, Ab.data());
    pack_bf16_matrix(B.data(), b_rows, b_cols, b_cols, Bb.data());
    const double f32 = fastest([&] {
      gemm_f32(s.ta, s.tb, s.M, s.N, s.K, 1.f, A.data(), a_cols, B.data(), b_cols, 0.f, C.data(), s.N);
    });
    const double pre = fastest([&] {
      gemm_bf16_packed(s.ta, s.tb, s.M, s.N, s.K, 1.f, Ab.data(), a_cols, Bb.data(), b_cols, 0.f, C.data(), s.N);
    });
    const double call = fastest([&] {
      gemm_bf16_inputs(s.ta, s.tb, s.M, s.N, s.K, 1.f, A.data(), a_cols, B.data(), b_cols, 0.f, C.data(), s.N);
    });
    const double flop = 2.0 * double(s.M) * double(s.N) * double(s.K);
    std::printf("%-18s %6lld %6lld %6lld | %8.0f | %10.0f %5.2fx | %10.0f %5.2fx\n", s.what, (long long)s.M,
                (long long)s.N, (long long)s.K, flop / f32 / 1e9, flop / pre / 1e9, f32 / pre, flop / call / 1e9,
                f32 / call);
  }
  return 0;
}
