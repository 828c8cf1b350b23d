// Thread count of the CPU backend (oneTBB arena and BLAS). Results are deterministic for a
// given thread count; most kernels give the same bits for any thread count.
#pragma once

namespace scion {
// n <= 0 means "all hardware threads". Lasts until the next call.
void set_num_threads(int n);
int num_threads();
}  // namespace scion
