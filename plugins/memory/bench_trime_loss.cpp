// Times loss.trime's op against plain cross-entropy, forward and backward, at the experiment's
// shapes (B = 8 segments of T = 128 tokens, V = 257 bytes, C = 128), one thread by default.
//   build/bin/bench_trime_loss [threads] [reps]
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "scion/ops.h"
#include "scion/threads.h"
#include "trime_loss.h"

using namespace scion;

int main(int argc, char** argv) {
  set_num_threads(argc > 1 ? std::atoi(argv[1]) : 1);
  const int reps = argc > 2 ? std::atoi(argv[2]) : 20;
  const int64_t B = 8, T = 128, V = 257, C = 128;
  Tensor logits = Tensor::randn({B, T, V}, 1), reps_t = Tensor::randn({B, T, C}, 2);
  Tensor targets = Tensor::randint({B, T}, 3, 0, V);
  auto time = [&](const char* name, auto&& loss_fn) {
    double best = 1e9;
    for (int r = 0; r < reps; ++r) {
      Tensor l = logits.detach().clone().set_requires_grad(true), h = reps_t.detach().clone().set_requires_grad(true);
      const auto t0 = std::chrono::steady_clock::now();
      loss_fn(l, h).backward();
      const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      best = std::min(best, ms);
    }
    std::printf("%-14s %8.2f ms (forward + backward, best of %d)\n", name, best, reps);
  };
  time("cross_entropy", [&](const Tensor& l, const Tensor&) { return ops::cross_entropy(l, targets); });
  for (auto [name, kind] : {std::pair{"trime local", memory::MemoryKind::local},
                            std::pair{"trime long", memory::MemoryKind::long_},
                            std::pair{"trime ext", memory::MemoryKind::ext}}) {
    memory::MemorySpec m;
    m.kind = kind, m.rows = B, m.len = T;
    time(name, [&](const Tensor& l, const Tensor& h) { return memory::trime_loss(l, h, targets, m); });
  }
  return 0;
}
