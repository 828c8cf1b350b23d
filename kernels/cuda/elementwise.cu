// Elementwise kernels: broadcast binary ops, unary ops and their derivatives, scaling, masks,
// bias rows. Templated on the storage type (f32, or bf16 as uint16_t); arithmetic is f32. The
// formulas are the CPU's (common/elementwise_math.h).
#include "common/elementwise_math.h"
#include "cuda/common.cuh"

namespace scion::cuda {
namespace {
using namespace detail;

// Broadcast geometry as a kernel parameter (by value: no device copy of shapes needed).
struct Geometry {
  int64_t shape[kMaxDims];
  int64_t as[kMaxDims];
  int64_t bs[kMaxDims];
  int ndim;
};

// Both operands dense and of the output's shape: no index arithmetic.
template <BinaryOp OP, class T>
__global__ void binary_dense(const T* a, const T* b, T* y, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    st(y, i, kernels::binary_value<OP>(ld(a, i), ld(b, i)));
}

// General broadcast: each output element decomposes its index. Consecutive threads take
// consecutive output elements, so reads are coalesced whenever the innermost stride is 1 or 0.
template <BinaryOp OP, class T>
__global__ void binary_strided(const T* a, const T* b, T* y, int64_t n, Geometry g) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    int64_t rem = i, ao = 0, bo = 0;
    for (int d = g.ndim - 1; d >= 0; --d) {
      const int64_t c = rem % g.shape[d];
      rem /= g.shape[d];
      ao += c * g.as[d];
      bo += c * g.bs[d];
    }
    st(y, i, kernels::binary_value<OP>(ld(a, ao), ld(b, bo)));
  }
}

bool dense(const int64_t* strides, const int64_t* shape, int ndim) {
  int64_t expect = 1;
  for (int d = ndim - 1; d >= 0; --d) {
    if (shape[d] != 1 && strides[d] != expect) return false;
    expect *= shape[d];
  }
  return true;
}

template <BinaryOp OP, class T>
void binary_launch(const T* a, const int64_t* as, const T* b, const int64_t* bs, T* y,
                   const int64_t* shape, int ndim, cudaStream_t s) {
  if (ndim > kMaxDims) throw std::invalid_argument("cuda::binary: too many dimensions");
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) n *= shape[d];
  if (n == 0) return;
  if (dense(as, shape, ndim) && dense(bs, shape, ndim)) {
    binary_dense<OP><<<grid1d(n), launch::kElementwiseThreads, 0, s>>>(a, b, y, n);
  } else {
    Geometry g{};
    g.ndim = ndim;
    for (int d = 0; d < ndim; ++d) {
      g.shape[d] = shape[d];
      g.as[d] = as[d];
      g.bs[d] = bs[d];
    }
    binary_strided<OP><<<grid1d(n), launch::kElementwiseThreads, 0, s>>>(a, b, y, n, g);
  }
  check_launch("cuda::binary");
}

template <class T>
void binary_any(BinaryOp op, const T* a, const int64_t* as, const T* b, const int64_t* bs, T* y,
                const int64_t* shape, int ndim, cudaStream_t s) {
  switch (op) {
    case BinaryOp::add: return binary_launch<BinaryOp::add>(a, as, b, bs, y, shape, ndim, s);
    case BinaryOp::sub: return binary_launch<BinaryOp::sub>(a, as, b, bs, y, shape, ndim, s);
    case BinaryOp::mul: return binary_launch<BinaryOp::mul>(a, as, b, bs, y, shape, ndim, s);
    case BinaryOp::div: return binary_launch<BinaryOp::div>(a, as, b, bs, y, shape, ndim, s);
  }
}

// ---- unary ----------------------------------------------------------------------------------------
// The device's transcendental functions for the shared formulas (common/elementwise_math.h).
// The CPU uses polynomial exp/tanh with 1-2 ulp error; the device's expf/tanhf are within 2 ulp
// as well, so the two agree to a few ulp (not bit for bit).
struct DeviceMath {
  static __host__ __device__ __forceinline__ float exp(float x) { return expf(x); }
  static __host__ __device__ __forceinline__ float log(float x) { return logf(x); }
  static __host__ __device__ __forceinline__ float tanh(float x) { return tanhf(x); }
  static __host__ __device__ __forceinline__ float sqrt(float x) { return sqrtf(x); }
  static __host__ __device__ __forceinline__ float pow(float x, float y) { return powf(x, y); }
};

template <UnaryOp OP, class T>
__global__ void unary_kernel(const T* x, T* y, int64_t n, float p0, float p1) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    st(y, i, kernels::unary_value<OP, DeviceMath>(ld(x, i), p0, p1));
}
// x or y may be null (the CPU contract): a null one reads as 0, which the op then ignores.
template <UnaryOp OP, class T>
__global__ void unary_bwd_kernel(const T* x, const T* y, const T* gy, T* gx, int64_t n, float p0, float p1) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float xi = x ? ld(x, i) : 0.f;
    const float yi = y ? ld(y, i) : 0.f;
    st(gx, i, kernels::unary_grad<OP, DeviceMath>(xi, yi, ld(gy, i), p0, p1));
  }
}

template <class T>
void unary_any(UnaryOp op, const T* x, T* y, int64_t n, float p0, float p1, cudaStream_t s) {
  if (n == 0) return;
  switch (op) {
#define CASE(name)                                                                                 \
  case UnaryOp::name:                                                                              \
    unary_kernel<UnaryOp::name><<<grid1d(n), launch::kElementwiseThreads, 0, s>>>(x, y, n, p0, p1); \
    break;
    SCION_UNARY_OPS(CASE)
#undef CASE
  }
  check_launch("cuda::unary");
}
template <class T>
void unary_bwd_any(UnaryOp op, const T* x, const T* y, const T* gy, T* gx, int64_t n, float p0,
                   float p1, cudaStream_t s) {
  if (n == 0) return;
  switch (op) {
#define CASE(name)                                                                     \
  case UnaryOp::name:                                                                  \
    unary_bwd_kernel<UnaryOp::name><<<grid1d(n), launch::kElementwiseThreads, 0, s>>>( \
        x, y, gy, gx, n, p0, p1);                                                      \
    break;
    SCION_UNARY_OPS(CASE)
#undef CASE
  }
  check_launch("cuda::unary_backward");
}

template <class T>
__global__ void masked_scale_kernel(const T* x, const uint8_t* mask, T* y, int64_t n, float scale) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    st(y, i, mask[i] ? ld(x, i) * scale : 0.f);
}

__global__ void scale_kernel(float* x, int64_t n, float s) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] *= s;
}

// y[r, c] += bias[c]: a 2-D grid (column blocks x row slices) so the column index needs no
// division and bias reads stay in L1.
template <class T>
__global__ void add_bias_kernel(T* y, const float* bias, int64_t rows, int64_t n) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= n) return;
  const float bc = bias[c];
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) st(y, r * n + c, ld(y, r * n + c) + bc);
}

template <class T>
void add_bias_any(T* y, const float* bias, int64_t rows, int64_t n, cudaStream_t s) {
  if (rows == 0 || n == 0) return;
  const dim3 grid(unsigned(launch::ceil_div(n, 256)), unsigned(std::min<int64_t>(rows, 1024)));
  add_bias_kernel<<<grid, 256, 0, s>>>(y, bias, rows, n);
  check_launch("cuda::add_bias_rows");
}

}  // namespace

void binary(BinaryOp op, const float* a, const int64_t* as, const float* b, const int64_t* bs,
            float* y, const int64_t* shape, int ndim, void* stream) {
  binary_any(op, a, as, b, bs, y, shape, ndim, as_stream(stream));
}
void binary_bf16(BinaryOp op, const uint16_t* a, const int64_t* as, const uint16_t* b,
                 const int64_t* bs, uint16_t* y, const int64_t* shape, int ndim, void* stream) {
  binary_any(op, a, as, b, bs, y, shape, ndim, as_stream(stream));
}
void unary(UnaryOp op, const float* x, float* y, int64_t n, float p0, float p1, void* stream) {
  unary_any(op, x, y, n, p0, p1, as_stream(stream));
}
void unary_bf16(UnaryOp op, const uint16_t* x, uint16_t* y, int64_t n, float p0, float p1, void* stream) {
  unary_any(op, x, y, n, p0, p1, as_stream(stream));
}
void unary_backward(UnaryOp op, const float* x, const float* y, const float* gy, float* gx, int64_t n,
                    float p0, float p1, void* stream) {
  unary_bwd_any(op, x, y, gy, gx, n, p0, p1, as_stream(stream));
}
void unary_backward_bf16(UnaryOp op, const uint16_t* x, const uint16_t* y, const uint16_t* gy,
                         uint16_t* gx, int64_t n, float p0, float p1, void* stream) {
  unary_bwd_any(op, x, y, gy, gx, n, p0, p1, as_stream(stream));
}
void masked_scale(const float* x, const uint8_t* mask, float* y, int64_t n, float scale, void* stream) {
  if (n == 0) return;
  masked_scale_kernel<<<grid1d(n), launch::kElementwiseThreads, 0, as_stream(stream)>>>(x, mask, y, n, scale);
  check_launch("cuda::masked_scale");
}
void masked_scale_bf16(const uint16_t* x, const uint8_t* mask, uint16_t* y, int64_t n, float scale,
                       void* stream) {
  if (n == 0) return;
  masked_scale_kernel<<<grid1d(n), launch::kElementwiseThreads, 0, as_stream(stream)>>>(x, mask, y, n, scale);
  check_launch("cuda::masked_scale_bf16");
}
void scale_inplace(float* x, int64_t n, float s, void* stream) {
  if (n == 0) return;
  scale_kernel<<<grid1d(n), launch::kElementwiseThreads, 0, as_stream(stream)>>>(x, n, s);
  check_launch("cuda::scale_inplace");
}
void add_bias_rows(float* y, const float* bias, int64_t rows, int64_t n, void* stream) {
  add_bias_any(y, bias, rows, n, as_stream(stream));
}
void add_bias_rows_bf16(uint16_t* y, const float* bias, int64_t rows, int64_t n, void* stream) {
  add_bias_any(y, bias, rows, n, as_stream(stream));
}

}  // namespace scion::cuda
