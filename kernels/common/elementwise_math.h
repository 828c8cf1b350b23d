// The elementwise formulas of both devices, written once: binary ops, unary ops and the
// unary ops' derivatives, each over one f32 value. Math is the device's set of transcendental
// functions (static exp, log, tanh, sqrt, pow over float): the CPU passes its vectorisable
// approximations (cpu/vec_math.h), the CUDA kernels the device's expf/logf/tanhf/sqrtf/powf,
// so the two agree to a few ulp and every other step of a formula is the same expression.
//
// g++ compiles these as inline functions (kernels/cpu), nvcc as __host__ __device__ ones
// (kernels/cuda): SCION_ELEMENTWISE_FN says which.
#pragma once
#include "common/kernel_types.h"

#ifdef __CUDACC__
#define SCION_ELEMENTWISE_FN __host__ __device__ __forceinline__
#else
#define SCION_ELEMENTWISE_FN inline
#endif

namespace scion::kernels {

inline constexpr float kSqrt2OverPi = 0.7978845608028654f;
inline constexpr float kGeluC = 0.044715f;  // GELU, tanh form

template <BinaryOp OP>
SCION_ELEMENTWISE_FN float binary_value(float a, float b) {
  if constexpr (OP == BinaryOp::add) return a + b;
  if constexpr (OP == BinaryOp::sub) return a - b;
  if constexpr (OP == BinaryOp::mul) return a * b;
  return a / b;
}

template <UnaryOp OP, class Math>
SCION_ELEMENTWISE_FN float unary_value(float x, float p0, float p1) {
  if constexpr (OP == UnaryOp::neg) return -x;
  if constexpr (OP == UnaryOp::exp) return Math::exp(x);
  if constexpr (OP == UnaryOp::log) return Math::log(x);
  if constexpr (OP == UnaryOp::tanh) return Math::tanh(x);
  if constexpr (OP == UnaryOp::sqrt) return Math::sqrt(x);
  if constexpr (OP == UnaryOp::rsqrt) return 1.0f / Math::sqrt(x);
  if constexpr (OP == UnaryOp::relu) return x > 0.f ? x : 0.f;
  if constexpr (OP == UnaryOp::gelu) {
    const float u = kSqrt2OverPi * (x + kGeluC * x * x * x);
    return 0.5f * x * (1.f + Math::tanh(u));
  }
  if constexpr (OP == UnaryOp::silu) return x / (1.f + Math::exp(-x));  // x * sigmoid(x)
  if constexpr (OP == UnaryOp::clamp) return x < p0 ? p0 : (x > p1 ? p1 : x);
  if constexpr (OP == UnaryOp::pow) return Math::pow(x, p0);
  if constexpr (OP == UnaryOp::add_scalar) return x + p0;
  if constexpr (OP == UnaryOp::mul_scalar) return x * p0;
  return x;
}

// gx = gy * f'(x), with y = f(x) for the ops whose derivative is cheaper from y. A kernel that
// was given no x (or no y) passes 0 for it: the op does not read it.
template <UnaryOp OP, class Math>
SCION_ELEMENTWISE_FN float unary_grad(float x, float y, float gy, float p0, float p1) {
  if constexpr (OP == UnaryOp::neg) return -gy;
  if constexpr (OP == UnaryOp::exp) return gy * y;
  if constexpr (OP == UnaryOp::log) return gy / x;
  if constexpr (OP == UnaryOp::tanh) return gy * (1.f - y * y);
  if constexpr (OP == UnaryOp::sqrt) return gy * 0.5f / y;
  if constexpr (OP == UnaryOp::rsqrt) return gy * -0.5f * y * y * y;
  if constexpr (OP == UnaryOp::relu) return x > 0.f ? gy : 0.f;
  if constexpr (OP == UnaryOp::gelu) {
    const float u = kSqrt2OverPi * (x + kGeluC * x * x * x);
    const float t = Math::tanh(u);
    const float du = kSqrt2OverPi * (1.f + 3.f * kGeluC * x * x);
    return gy * (0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * du);
  }
  if constexpr (OP == UnaryOp::silu) {  // d/dx x*s(x) = s + x*s*(1-s)
    const float sg = 1.f / (1.f + Math::exp(-x));
    return gy * sg * (1.f + x * (1.f - sg));
  }
  if constexpr (OP == UnaryOp::clamp) return (x >= p0 && x <= p1) ? gy : 0.f;
  if constexpr (OP == UnaryOp::pow) return gy * p0 * Math::pow(x, p0 - 1.f);
  if constexpr (OP == UnaryOp::add_scalar) return gy;
  if constexpr (OP == UnaryOp::mul_scalar) return gy * p0;
  return gy;
}

// Every UnaryOp, for the switches that turn the runtime op into a template argument.
#define SCION_UNARY_OPS(MACRO)                                                                   \
  MACRO(neg) MACRO(exp) MACRO(log) MACRO(tanh) MACRO(sqrt) MACRO(rsqrt) MACRO(relu) MACRO(gelu) \
  MACRO(silu) MACRO(clamp) MACRO(pow) MACRO(add_scalar) MACRO(mul_scalar)

}  // namespace scion::kernels
