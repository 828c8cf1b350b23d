// The LM head + cross-entropy, forward and backward, unfused (linear then cross_entropy, the
// [rows, V] logits and their gradient stored) against ops::linear_cross_entropy at several
// chunk sizes, in one run, f32 and bf16 GEMMs. Shapes default to the CPU benchmark model's
// head (bench_gpt_train: batch 8 x 128 tokens, width 256, vocabulary 50304).
//   bench_lm_head [rows C V reps]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "scion/ops.h"
#include "scion/precision.h"
#include "scion/tensor.h"

using namespace scion;

int main(int argc, char** argv) {
  const int64_t rows = argc > 1 ? std::atoll(argv[1]) : 1024, C = argc > 2 ? std::atoll(argv[2]) : 256,
                V = argc > 3 ? std::atoll(argv[3]) : 50304;
  const int reps = argc > 4 ? std::atoi(argv[4]) : 5;
  Tensor x = Tensor::randn({rows, C}, 1, 0.f, 1.f), w = Tensor::randn({V, C}, 2, 0.f, 0.02f);
  Tensor t = Tensor::randint({rows}, 3, 0, V, DType::i64);
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  const double gflop = 3 * 2.0 * double(rows) * double(C) * double(V) / 1e9;
  std::printf("LM head + cross-entropy, forward + backward: rows %lld, C %lld, V %lld (%.1f GFLOP in GEMMs); "
              "logits %.0f MB\n",
              (long long)rows, (long long)C, (long long)V, gflop, 4.0 * double(rows) * double(V) / 1e6);
  auto time = [&](auto&& step) {
    std::vector<double> ms;
    for (int r = 0; r < reps + 1; ++r) {
      x.zero_grad();
      w.zero_grad();
      const auto t0 = std::chrono::steady_clock::now();
      step().backward();
      const double m = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      if (r > 0) ms.push_back(m);  // the first builds the buffers and primitives
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  };
  const Tensor dz = Tensor::randn({rows, V}, 4, 0.f, 1e-5f);
  auto gemm_alone = [&](auto&& f) {
    std::vector<double> ms;
    for (int r = 0; r < reps + 1; ++r) {
      const auto t0 = std::chrono::steady_clock::now();
      f();
      if (r > 0) ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    return ms[ms.size() / 2];
  };
  for (MatmulPrecision p : {MatmulPrecision::f32, MatmulPrecision::bf16}) {
    set_matmul_precision(p);
    const char* name = p == MatmulPrecision::f32 ? "f32" : "bf16";
    // The three GEMMs alone, on the same shapes (bench_gpt_train's ceiling for the head): no
    // cross-entropy can make the head faster than their sum.
    const double gemms = gemm_alone([&] { ops::matmul(x, w, false, true); }) + gemm_alone([&] { ops::matmul(dz, w); }) +
                         gemm_alone([&] { ops::matmul(dz, x, true, false); });
    std::printf("  %-5s GEMMs alone      %8.1f ms  %6.1f GFLOP/s\n", name, gemms, gflop / gemms * 1e3);
    const double unfused = time([&] { return ops::cross_entropy(ops::matmul(x, w, false, true), t); });
    std::printf("  %-5s unfused          %8.1f ms  %6.1f GFLOP/s  (%.0f%% of the GEMMs' speed)\n", name, unfused,
                gflop / unfused * 1e3, 100 * gemms / unfused);
    for (int64_t chunk : {int64_t(64), int64_t(128), int64_t(256), int64_t(512), int64_t(0)}) {
      const double fused = time([&] { return ops::linear_cross_entropy(x, w, Tensor(), t, -100, chunk); });
      std::printf("  %-5s fused, chunk %-4s %8.1f ms  %6.1f GFLOP/s  (%.2fx unfused, %.0f%% of the GEMMs' speed)\n", name,
                  chunk ? std::to_string(chunk).c_str() : "auto", fused, gflop / fused * 1e3, unfused / fused,
                  100 * gemms / fused);
    }
  }
  set_matmul_precision(MatmulPrecision::f32);
}
