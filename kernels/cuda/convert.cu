// Strided copies with dtype conversion, and fills.
#include <cuda_fp16.h>

#include <cmath>

#include "cuda/common.cuh"

namespace scion::cuda {
namespace {
using namespace detail;

struct View {
  int64_t shape[kMaxDims];
  int64_t strides[kMaxDims];
  int ndim;
};

// As on the CPU, values travel through double (exact for every dtype but i64 beyond 2^53, which
// is copied bit for bit when both sides are i64 by the same-dtype path).
__device__ __forceinline__ double load(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(p)[i];
    case DType::bf16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::f16: return __half2float(static_cast<const __half*>(p)[i]);
    case DType::i32: return static_cast<const int32_t*>(p)[i];
    case DType::i64: return double(static_cast<const int64_t*>(p)[i]);
    case DType::u16: return static_cast<const uint16_t*>(p)[i];
    case DType::u8: return static_cast<const uint8_t*>(p)[i];
  }
  return 0;
}
__device__ __forceinline__ void store(void* p, DType t, int64_t i, double v) {
  switch (t) {
    case DType::f32: static_cast<float*>(p)[i] = float(v); break;
    case DType::bf16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(float(v)); break;
    // __float2half_rn is IEEE round-to-nearest-even with subnormals, like scion::f32_to_f16.
    case DType::f16: static_cast<__half*>(p)[i] = __float2half_rn(float(v)); break;
    case DType::i32: static_cast<int32_t*>(p)[i] = int32_t(v); break;
    case DType::i64: static_cast<int64_t*>(p)[i] = int64_t(v); break;
    case DType::u16: static_cast<uint16_t*>(p)[i] = uint16_t(v); break;
    case DType::u8: static_cast<uint8_t*>(p)[i] = uint8_t(v); break;
  }
}

__device__ __forceinline__ int64_t source_offset(int64_t i, const View& v) {
  int64_t off = 0;
  for (int d = v.ndim - 1; d >= 0; --d) {
    off += (i % v.shape[d]) * v.strides[d];
    i /= v.shape[d];
  }
  return off;
}

// Same dtype: move raw words of the element's size (no conversion, i64 exact).
template <class W>
__global__ void gather_kernel(const W* src, W* dst, int64_t n, View v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = src[source_offset(i, v)];
}
// The mixed-precision hot pair, without the double round trip.
__global__ void f32_to_bf16_kernel(const float* src, uint16_t* dst, int64_t n, View v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = f32_to_bf16(src[source_offset(i, v)]);
}
__global__ void bf16_to_f32_kernel(const uint16_t* src, float* dst, int64_t n, View v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = bf16_to_f32(src[source_offset(i, v)]);
}
__global__ void convert_kernel(const void* src, DType st, void* dst, DType dt, int64_t n, View v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store(dst, dt, i, load(src, st, source_offset(i, v)));
}

__global__ void fill_f32_kernel(float* y, int64_t n, float v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = v;
}
__global__ void fill_any_kernel(void* y, DType t, int64_t n, double v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    store(y, t, i, v);
}

View make_view(const int64_t* shape, const int64_t* strides, int ndim, int64_t& n) {
  if (ndim > kMaxDims) throw std::invalid_argument("cuda::strided_copy: too many dimensions");
  View v{};
  v.ndim = ndim;
  n = 1;
  for (int d = 0; d < ndim; ++d) {
    v.shape[d] = shape[d];
    v.strides[d] = strides[d];
    n *= shape[d];
  }
  return v;
}

bool contiguous(const View& v) {
  int64_t expect = 1;
  for (int d = v.ndim - 1; d >= 0; --d) {
    if (v.shape[d] != 1 && v.strides[d] != expect) return false;
    expect *= v.shape[d];
  }
  return true;
}

}  // namespace

void strided_copy(const void* src, DType st, const int64_t* shape, const int64_t* strides, int ndim,
                  void* dst, DType dt, void* stream) {
  const cudaStream_t s = as_stream(stream);
  int64_t n = 0;
  const View v = make_view(shape, strides, ndim, n);
  if (n == 0) return;
  const size_t es = dtype_size(st);
  if (st == dt && contiguous(v)) {  // a plain copy: the copy engine
    check(cudaMemcpyAsync(dst, src, size_t(n) * es, cudaMemcpyDeviceToDevice, s), "cuda::strided_copy");
    return;
  }
  const unsigned g = grid1d(n);
  const unsigned t = launch::kElementwiseThreads;
  if (st == dt) {
    switch (es) {
      case 1: gather_kernel<<<g, t, 0, s>>>(static_cast<const uint8_t*>(src), static_cast<uint8_t*>(dst), n, v); break;
      case 2: gather_kernel<<<g, t, 0, s>>>(static_cast<const uint16_t*>(src), static_cast<uint16_t*>(dst), n, v); break;
      case 4: gather_kernel<<<g, t, 0, s>>>(static_cast<const uint32_t*>(src), static_cast<uint32_t*>(dst), n, v); break;
      default: gather_kernel<<<g, t, 0, s>>>(static_cast<const uint64_t*>(src), static_cast<uint64_t*>(dst), n, v); break;
    }
  } else if (st == DType::f32 && dt == DType::bf16) {
    f32_to_bf16_kernel<<<g, t, 0, s>>>(static_cast<const float*>(src), static_cast<uint16_t*>(dst), n, v);
  } else if (st == DType::bf16 && dt == DType::f32) {
    bf16_to_f32_kernel<<<g, t, 0, s>>>(static_cast<const uint16_t*>(src), static_cast<float*>(dst), n, v);
  } else {
    convert_kernel<<<g, t, 0, s>>>(src, st, dst, dt, n, v);
  }
  check_launch("cuda::strided_copy");
}

void fill(void* dst, DType t, int64_t n, double value, void* stream) {
  const cudaStream_t s = as_stream(stream);
  if (n == 0) return;
  if (value == 0.0 && !std::signbit(value)) {  // all-zero bits for every dtype (not -0.0)
    check(cudaMemsetAsync(dst, 0, size_t(n) * dtype_size(t), s), "cuda::fill");
    return;
  }
  if (t == DType::f32)
    fill_f32_kernel<<<grid1d(n), launch::kElementwiseThreads, 0, s>>>(static_cast<float*>(dst), n, float(value));
  else
    fill_any_kernel<<<grid1d(n), launch::kElementwiseThreads, 0, s>>>(dst, t, n, value);
  check_launch("cuda::fill");
}

}  // namespace scion::cuda
