// Elementwise kernels: broadcast binary ops, unary ops and their derivatives (the formulas in
// common/elementwise_math.h, shared with the CUDA kernels), scaling and masks.
#include <cmath>
#include <cstring>

#include "common/elementwise_math.h"
#include "cpu/cpu_kernels.h"
#include "cpu/parallel.h"
#include "cpu/vec_math.h"

namespace scion::cpu {
namespace {

// The CPU's transcendental functions for the shared formulas (common/elementwise_math.h).
struct CpuMath {
  static float exp(float x) { return exp_approx(x); }
  static float log(float x) { return std::log(x); }
  static float tanh(float x) { return tanh_approx(x); }
  static float sqrt(float x) { return std::sqrt(x); }
  static float pow(float x, float y) { return std::pow(x, y); }
};

// Inner loop over the last dimension, specialised for the common stride patterns so the
// compiler vectorises them.
template <BinaryOp OP>
inline void row(const float* a, int64_t as, const float* b, int64_t bs, float* y, int64_t n) {
  if (as == 1 && bs == 1) {
    for (int64_t i = 0; i < n; ++i) y[i] = kernels::binary_value<OP>(a[i], b[i]);
  } else if (as == 1 && bs == 0) {
    const float bv = b[0];
    for (int64_t i = 0; i < n; ++i) y[i] = kernels::binary_value<OP>(a[i], bv);
  } else if (as == 0 && bs == 1) {
    const float av = a[0];
    for (int64_t i = 0; i < n; ++i) y[i] = kernels::binary_value<OP>(av, b[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = kernels::binary_value<OP>(a[i * as], b[i * bs]);
  }
}

template <BinaryOp OP>
void binary_impl(const float* a, const int64_t* ast, const float* b, const int64_t* bst, float* y,
                 const int64_t* shape, int ndim) {
  if (ndim == 0) {
    y[0] = kernels::binary_value<OP>(a[0], b[0]);
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

template <UnaryOp OP>
void unary_impl(const float* x, float* y, int64_t n, float p0, float p1) {
  parallel_range(n, 16384, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) y[i] = kernels::unary_value<OP, CpuMath>(x[i], p0, p1);
  });
}
template <UnaryOp OP>
void unary_bwd_impl(const float* x, const float* y, const float* gy, float* gx, int64_t n, float p0,
                    float p1) {
  // Separate loops for "derivative from x" and "from y" keep each loop branch-free.
  parallel_range(n, 16384, [&](int64_t i0, int64_t i1) {
    if (x && y) {
      for (int64_t i = i0; i < i1; ++i) gx[i] = kernels::unary_grad<OP, CpuMath>(x[i], y[i], gy[i], p0, p1);
    } else if (x) {
      for (int64_t i = i0; i < i1; ++i) gx[i] = kernels::unary_grad<OP, CpuMath>(x[i], 0.f, gy[i], p0, p1);
    } else {
      for (int64_t i = i0; i < i1; ++i) gx[i] = kernels::unary_grad<OP, CpuMath>(0.f, y[i], gy[i], p0, p1);
    }
  });
}

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
    SCION_UNARY_OPS(CASE)
#undef CASE
  }
}

void unary_backward(UnaryOp op, const float* x, const float* y, const float* gy, float* gx, int64_t n,
                    float p0, float p1) {
  switch (op) {
#define CASE(name) \
  case UnaryOp::name: return unary_bwd_impl<UnaryOp::name>(x, y, gy, gx, n, p0, p1);
    SCION_UNARY_OPS(CASE)
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
