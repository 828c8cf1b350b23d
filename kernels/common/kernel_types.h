// The types both kernel libraries (kernels/cpu, kernels/cuda) and the backend table
// (core/ops/backend.h) share: one definition, so a value passes from an op to either device's
// kernels as it is. Plain C++ (no CUDA headers): g++ and nvcc both compile it.
#pragma once
#include <cstdint>

#include "scion/precision.h"

namespace scion::kernels {

constexpr int kMaxDims = 8;  // the most dimensions a strided kernel takes

enum class BinaryOp : uint8_t { add, sub, mul, div };
// p0/p1 are the op's scalars: clamp lo/hi, pow's exponent, add_scalar's and mul_scalar's scalar.
enum class UnaryOp : uint8_t { neg, exp, log, tanh, sqrt, rsqrt, relu, gelu, silu, clamp, pow, add_scalar, mul_scalar };

// Fused attention over q/k/v rows: element (b, t, h, d) at base + b*bstride + t*tstride + h*D + d.
struct AttentionShape {
  int64_t B, T, H, D;
  int64_t q_bstride, q_tstride, k_bstride, k_tstride, v_bstride, v_tstride;  // in elements
  bool causal;
  const uint8_t* key_mask;  // [B, T] in the kernels' device memory, or null
  // Row stride of gq/gk/gv (0: H*D, contiguous). 3·H·D when the three gradients are the
  // thirds of one packed [B, T, 3·H·D] gradient (ops::attention_packed). The CPU kernel writes
  // it; the CUDA kernels write contiguous rows (the cuda table's adapter places them).
  int64_t grad_tstride = 0;
  // The precision of the CPU kernel's per-head GEMMs (the caller passes the run's matmul
  // precision). The CUDA kernels compute in f32 whatever it says.
  MatmulPrecision precision = MatmulPrecision::f32;
};

}  // namespace scion::kernels
