// The bucketed gradient all-reduce (core/dist/buckets.h) against one MPI_Allreduce of a buffer
// of the same size, on the parameter shapes of GPT 4 layers x 256 wide, vocabulary 50304
// (bench/gpt_train_compare.sh's model). Run under mpirun:
//   mpirun --allow-run-as-root --oversubscribe -np 2 build/bin/bench_allreduce
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "dist/buckets.h"
#include "dist/mpi.h"

using namespace scion;
using namespace scion::runtime;

int main() {
  auto comm = std::make_shared<MpiCommunicator>();
  const int64_t V = 50304, C = 256, L = 4, T = 128;
  std::vector<Shape> shapes = {{V, C}, {T, C}};
  for (int l = 0; l < L; ++l)
    for (Shape s : std::vector<Shape>{{C}, {C}, {3 * C, C}, {3 * C}, {C, C}, {C}, {C}, {C}, {4 * C, C}, {4 * C}, {C, 4 * C}, {C}})
      shapes.push_back(s);
  shapes.push_back({C});
  shapes.push_back({C});
  std::vector<Tensor> params;
  int64_t total = 0;
  for (const auto& s : shapes) {
    Tensor p = Tensor::zeros(s);
    p.set_requires_grad(true);
    p.set_grad(Tensor::ones(s));
    params.push_back(p);
    total += p.numel();
  }
  GradBuckets buckets(*comm, params);
  Tensor flat = Tensor::ones({total});
  auto time = [&](auto&& f) {
    std::vector<double> t;
    for (int rep = 0; rep < 12; ++rep) {
      comm->barrier();
      const auto t0 = std::chrono::steady_clock::now();
      f();
      t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  };
  const double one = time([&] { MPI_Allreduce(MPI_IN_PLACE, flat.raw_data(), int(total), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD); });
  const double bucketed = time([&] {
    buckets.begin_step();
    for (size_t k = params.size(); k-- > 0;) buckets.on_ready(&params[k].impl());
    buckets.finish();
  });
  if (comm->rank() == 0) {
    const double mb = double(total) * 4 / 1e6;
    std::printf("ranks %d, %lld floats (%.1f MB), %zu buckets\n", comm->world(), (long long)total, mb, buckets.buckets());
    std::printf("one MPI_Allreduce      %8.2f ms  %7.0f MB/s\n", one * 1e3, mb / one);
    std::printf("bucketed (pack+reduce) %8.2f ms  %7.0f MB/s\n", bucketed * 1e3, mb / bucketed);
  }
  return 0;
}
