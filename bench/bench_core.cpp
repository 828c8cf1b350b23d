// Micro-benchmark of the tensor runtime (not a test):
//  1. GEMM GFLOP/s through ops::matmul / ops::linear against raw cblas_sgemm on the same
//     buffers (the machine's BLAS peak), side by side in one run;
//  2. forward+backward time of one GPT-2 transformer block, with the share of each op kind.
// Usage: bench_core [--threads N] [--quick]
#include <cblas.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>

#include "scion/nn.h"
#include "scion/ops.h"
#include "scion/threads.h"

using namespace scion;
using Clock = std::chrono::steady_clock;
extern "C" void openblas_set_num_threads(int);

namespace {
double seconds_per_call(const std::function<void()>& fn, double min_seconds) {
  fn();  // warm-up
  int iters = 0;
  const auto t0 = Clock::now();
  double el = 0;
  do {
    fn();
    ++iters;
    el = std::chrono::duration<double>(Clock::now() - t0).count();
  } while (el < min_seconds);
  return el / iters;
}
}  // namespace

int main(int argc, char** argv) {
  int threads = 0;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--quick")) quick = true;
  }
  set_num_threads(threads);
  const double min_s = quick ? 0.2 : 1.0;
  std::printf("threads: %d\n\n", num_threads());
  std::printf("GEMM C[M,N] = A[M,K] B[K,N], f32\n");
  std::printf("%6s %6s %6s | %12s | %12s | %12s | %6s\n", "M", "N", "K", "cblas GF/s", "matmul GF/s",
              "linear GF/s", "ratio");
  const int sizes[][3] = {{256, 256, 256}, {512, 512, 512}, {1024, 1024, 1024}, {1024, 768, 3072},
                          {1024, 2304, 768}, {1024, 4096, 256}};
  for (auto& s : sizes) {
    const int M = s[0], N = s[1], K = s[2];
    Tensor a = Tensor::randn({M, K}, 1), b = Tensor::randn({K, N}, 2), c = Tensor::empty({M, N});
    const double flops = 2.0 * M * N * K;
    openblas_set_num_threads(num_threads());  // the reference: OpenBLAS threading itself
    const double t_blas = seconds_per_call([&] {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.f, a.data<float>(), K, b.data<float>(), N,
                  0.f, c.data<float>(), N);
    }, min_s);
    openblas_set_num_threads(1);  // Scion's setting: oneTBB splits, BLAS runs single-threaded
    const double t_mm = seconds_per_call([&] { Tensor y = ops::matmul(a, b); }, min_s);
    const double t_lin = seconds_per_call([&] { Tensor y = ops::linear(a, b, Tensor(), true); }, min_s);
    std::printf("%6d %6d %6d | %12.1f | %12.1f | %12.1f | %5.2fx\n", M, N, K, flops / t_blas * 1e-9,
                flops / t_mm * 1e-9, flops / t_lin * 1e-9, t_blas / t_mm);
  }

  // One GPT-2 block: B=8, T=128, C=256, 4 heads (the language-model benchmark's shape).
  const int64_t B = 8, T = 128, C = 256;
  nn::BlockConfig cfg;
  cfg.width = C;
  cfg.heads = 4;
  cfg.ffn = 4 * C;
  nn::TransformerBlock block(cfg);
  Tensor x = Tensor::randn({B, T, C}, 3).set_requires_grad(true);
  Tensor w = Tensor::randn({B, T, C}, 4);
  auto fwd = [&] {
    NoGradGuard g;
    Tensor y = block.forward(x);
  };
  auto fwd_bwd = [&] {
    block.zero_grad();
    x.zero_grad();
    Tensor loss = ops::sum_all(ops::mul(block.forward(x), w));
    loss.backward();
  };
  const double t_f = seconds_per_call(fwd, min_s), t_fb = seconds_per_call(fwd_bwd, min_s);
  const double block_flops = 3.0 * 2.0 * double(B * T) * double(12 * C * C) + 3.0 * 2.0 * 2.0 * double(B * T * T * C);
  std::printf("\nGPT-2 block B=%lld T=%lld C=%lld heads=4: forward %.2f ms, forward+backward %.2f ms (%.1f GFLOP/s)\n",
              (long long)B, (long long)T, (long long)C, t_f * 1e3, t_fb * 1e3, block_flops / t_fb * 1e-9);
  // Where the time goes, timed op by op on the same shapes.
  Tensor h = Tensor::randn({B, T, C}, 5);
  Tensor qkv = Tensor::randn({B, T, 3 * C}, 6);
  auto t_ln = seconds_per_call([&] { NoGradGuard g; Tensor y = ops::layernorm(h, block.ln_1->weight, block.ln_1->bias); }, min_s);
  auto t_attn = seconds_per_call([&] {
    NoGradGuard g;
    Tensor y = ops::attention(qkv.narrow(2, 0, C), qkv.narrow(2, C, C), qkv.narrow(2, 2 * C, C), 4, true);
  }, min_s);
  Tensor ff = Tensor::randn({B, T, 4 * C}, 1);
  auto t_gelu = seconds_per_call([&] { NoGradGuard g; Tensor y = ops::gelu(ff); }, min_s);
  auto t_qkv = seconds_per_call([&] { NoGradGuard g; Tensor y = block.attn->qkv->forward(h); }, min_s);
  std::printf("forward pieces: c_attn linear %.2f ms, attention %.2f ms, layernorm %.2f ms, gelu %.2f ms\n",
              t_qkv * 1e3, t_attn * 1e3, t_ln * 1e3, t_gelu * 1e3);
  return 0;
}
