// Small helpers over oneTBB for the kernels.
#pragma once
#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <cstdint>

namespace scion::cpu {

// Runs fn(begin, end) over [0, n) in chunks of at least `grain` items. Each item is handled
// by exactly one call, so per-item results never depend on scheduling.
template <class Fn>
inline void parallel_range(int64_t n, int64_t grain, Fn&& fn) {
  if (n <= 0) return;
  if (n <= grain) {
    fn(int64_t(0), n);
    return;
  }
  tbb::parallel_for(tbb::blocked_range<int64_t>(0, n, grain),
                    [&](const tbb::blocked_range<int64_t>& r) { fn(r.begin(), r.end()); });
}

// Grain for loops whose items cost about `work` flops each: aim at ~256k flops per task. A
// task handed to another thread costs microseconds (a wake-up, more under a VM), as much as a
// pass over a few hundred kB: at 32k flops per task the Llama benchmark's blocks (elementwise
// passes of about 1 MB) ran 10% slower in f32 (bench_gpt_train --family llama --vocab 256).
inline int64_t grain_for(int64_t work) {
  int64_t g = 262144 / (work > 0 ? work : 1);
  return g < 1 ? 1 : g;
}

}  // namespace scion::cpu
