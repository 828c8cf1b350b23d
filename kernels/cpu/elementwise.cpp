#include <cmath>
#include <cstring>

#include "cpu/cpu_kernels.h"
#include "cpu/parallel.h"
#include "cpu/vec_math.h"

namespace scion::cpu {
namespace {

template <BinaryOp OP>
inline float apply(float a, float b) {
  if constexpr (OP == BinaryOp::add) return a + b;
  if constexpr (OP == BinaryOp::sub) return a - b;
  if constexpr (OP == BinaryOp::mul) return a * b;
  return a / b;
}

// Inner loop over the last dimension, specialised for the common stride patterns so the
// compiler vectorises them.
template <BinaryOp OP>
inline void row(const float* a, int64_t as, const float* b, int64_t bs, float* y, int64_t n) {
  if (as == 1 && bs == 1) {
    for (int64_t i = 0; i < n; ++i) y[i] = apply<OP>(a[i], b[i]);
  } else if (as == 1 && bs == 0) {
    const float bv = b[0];
    for (int64_t i = 0; i < n; ++i) y[i] = apply<OP>(a[i], bv);
  } else if (as == 0 && bs == 1) {
    const float av = a[0];
    for (int64_t i = 0; i < n; ++i) y[i] = apply<OP>(av, b[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = apply<OP>(a[i * as], b[i * bs]);
  }
}

template <BinaryOp OP>
void binary_impl(const float* a, const int64_t* ast, const float* b, const int64_t* bst, float* y,
                 const int64_t* shape, int ndim) {
  if (ndim == 0) {
    y[0] = apply<OP>(a[0], b[0]);
    return;
  }
  const int64_t n = shape[ndim - 1];
  int64_t rows = 1;
  for (int d = 0; d < ndim - 1; ++d) rows *= shape[d];
  parallel_range(rows, grain_for(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      // Decompose the row index into the leading coordinates.
      int64_t rem = r, ao = 0, bo = 0;
      for (int d = ndim - 2; d >= 0; --d) {
        const int64_t c = rem % shape[d];
        rem /= shape[d];
        ao += c * ast[d];
        bo += c * bst[d];
      }
      row<OP>(a + ao, ast[ndim - 1], b + bo, bst[ndim - 1], y + r * n, n);
    }
  });
}

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluC = 0.044715f;

template <UnaryOp OP>
inline float unary_value(float x, float p0, float p1) {
  if constexpr (OP == UnaryOp::neg) return -x;
  if constexpr (OP == UnaryOp::exp) return exp_approx(x);
  if constexpr (OP == UnaryOp::log) return std::log(x);
  if constexpr (OP == UnaryOp::tanh) return tanh_approx(x);
  if constexpr (OP == UnaryOp::sqrt) return std::sqrt(x);
  if constexpr (OP == UnaryOp::rsqrt) return 1.0f / std::sqrt(x);
  if constexpr (OP == UnaryOp::relu) return x > 0.f ? x : 0.f;
  if constexpr (OP == UnaryOp::gelu) {
    const float u = kSqrt2OverPi * (x + kGeluC * x * x * x);
    return 0.5f * x * (1.f + tanh_approx(u));
  }
  if constexpr (OP == UnaryOp::clamp) return x < p0 ? p0 : (x > p1 ? p1 : x);
  if constexpr (OP == UnaryOp::pow) return std::pow(x, p0);
  if constexpr (OP == UnaryOp::add_scalar) return x + p0;
  if constexpr (OP == UnaryOp::mul_scalar) return x * p0;
  return x;
}

template <UnaryOp OP>
inline float unary_grad(float x, float y, float gy, float p0, float p1) {
  if constexpr (OP == UnaryOp::neg) return -gy;
  if constexpr (OP == UnaryOp::exp) return gy * y;
  if constexpr (OP == UnaryOp::log) return gy / x;
  if constexpr (OP == UnaryOp::tanh) return gy * (1.f - y * y);
  if constexpr (OP == UnaryOp::sqrt) return gy * 0.5f / y;
  if constexpr (OP == UnaryOp::rsqrt) return gy * -0.5f * y * y * y;
  if constexpr (OP == UnaryOp::relu) return x > 0.f ? gy : 0.f;
  if constexpr (OP == UnaryOp::gelu) {
    const float u = kSqrt2OverPi * (x + kGeluC * x * x * x);
    const float t = tanh_approx(u);
    const float du = kSqrt2OverPi * (1.f + 3.f * kGeluC * x * x);
    return gy * (0.5f * (1.f + t) + 0.5f * x * (1.f - t * t) * du);
  }
  if constexpr (OP == UnaryOp::clamp) return (x >= p0 && x <= p1) ? gy : 0.f;
  if constexpr (OP == UnaryOp::pow) return gy * p0 * std::pow(x, p0 - 1.f);
  if constexpr (OP == UnaryOp::add_scalar) return gy;
  if constexpr (OP == UnaryOp::mul_scalar) return gy * p0;
  return gy;
}

template <UnaryOp OP>
void unary_impl(const float* x, float* y, int64_t n, float p0, float p1) {
  parallel_range(n, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) y[i] = unary_value<OP>(x[i], p0, p1);
  });
}
template <UnaryOp OP>
void unary_bwd_impl(const float* x, const float* y, const float* gy, float* gx, int64_t n, float p0,
                    float p1) {
  // Separate loops for "derivative from x" and "from y" keep each loop branch-free.
  parallel_range(n, 16384, [&](int64_t i0, int64_t i1) {
    if (x && y) {
      for (int64_t i = i0; i < i1; ++i) gx[i] = unary_grad<OP>(x[i], y[i], gy[i], p0, p1);
    } else if (x) {
      for (int64_t i = i0; i < i1; ++i) gx[i] = unary_grad<OP>(x[i], 0.f, gy[i], p0, p1);
    } else {
      for (int64_t i = i0; i < i1; ++i) gx[i] = unary_grad<OP>(0.f, y[i], gy[i], p0, p1);
    }
  });
}

#define SCION_UNARY_CASES(MACRO) \
  MACRO(neg) MACRO(exp) MACRO(log) MACRO(tanh) MACRO(sqrt) MACRO(rsqrt) MACRO(relu) MACRO(gelu) \
  MACRO(clamp) MACRO(pow) MACRO(add_scalar) MACRO(mul_scalar)

}  // namespace

void binary(BinaryOp op, const float* a, const int64_t* as, const float* b, const int64_t* bs,
            float* y, const int64_t* shape, int ndim) {
  switch (op) {
    case BinaryOp::add: return binary_impl<BinaryOp::add>(a, as, b, bs, y, shape, ndim);
    case BinaryOp::sub: return binary_impl<BinaryOp::sub>(a, as, b, bs, y, shape, ndim);
    case BinaryOp::mul: return binary_impl<BinaryOp::mul>(a, as, b, bs, y, shape, ndim);
    case BinaryOp::div: return binary_impl<BinaryOp::div>(a, as, b, bs, y, shape, ndim);
  }
}

void unary(UnaryOp op, const float* x, float* y, int64_t n, float p0, float p1) {
  switch (op) {
#define CASE(name) \
  case UnaryOp::name: return unary_impl<UnaryOp::name>(x, y, n, p0, p1);
    SCION_UNARY_CASES(CASE)
#undef CASE
  }
}

void unary_backward(UnaryOp op, const float* x, const float* y, const float* gy, float* gx, int64_t n,
                    float p0, float p1) {
  switch (op) {
#define CASE(name) \
  case UnaryOp::name: return unary_bwd_impl<UnaryOp::name>(x, y, gy, gx, n, p0, p1);
    SCION_UNARY_CASES(CASE)
#undef CASE
  }
}

void scale_inplace(float* x, int64_t n, float s) {
  parallel_range(n, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) x[i] *= s;
  });
}

void masked_scale(const float* x, const uint8_t* mask, float* y, int64_t n, float scale) {
  parallel_range(n, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) y[i] = mask[i] ? x[i] * scale : 0.f;
  });
}

}  // namespace scion::cpu
