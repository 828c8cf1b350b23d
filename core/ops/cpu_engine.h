// What core needs from the CPU kernels' engine outside the tensor ops, without their headers:
// the rest of core reaches kernels/cpu only through ops (backend_cpu.cpp implements these).
#pragma once

namespace scion::ops {

// Reads the CPU GEMM settings of the environment (SCION_CPU_GEMM, SCION_CPU_BF16) and throws
// on a bad value: a run calls it before it writes anything, not at its first product.
void check_cpu_engine_environment();
// Whether the CPU multiplies bf16 in hardware (scion::matmul_bf16_native's answer).
bool cpu_bf16_native();
// Threads for the CPU's BLAS library (set_num_threads); it is held to one thread per call,
// oneTBB owning the parallelism.
void set_cpu_blas_threads(int n);

}  // namespace scion::ops
