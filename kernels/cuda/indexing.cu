// Indexing kernels, the twins of cpu/indexing.cpp: strided assignment, index_select and its
// backward, offset gathers, where/masked_fill, the max's backward scatter. No atomics: every
// accumulation is owned by one thread, which adds in the CPU's order.
#include "cuda/common.cuh"

namespace scion::cuda {
namespace {
using namespace detail;

struct Dims {
  int64_t shape[kMaxDims];
  int64_t s0[kMaxDims];
  int64_t s1[kMaxDims];
  int64_t s2[kMaxDims];
  int ndim;
};

Dims make_dims(const int64_t* shape, int ndim, const int64_t* a, const int64_t* b, const int64_t* c, int64_t& n) {
  if (ndim > kMaxDims) throw std::invalid_argument("cuda indexing: more than 8 dimensions");
  Dims d{};
  d.ndim = ndim;
  n = 1;
  for (int i = 0; i < ndim; ++i) {
    d.shape[i] = shape[i];
    d.s0[i] = a ? a[i] : 0;
    d.s1[i] = b ? b[i] : 0;
    d.s2[i] = c ? c[i] : 0;
    n *= shape[i];
  }
  return d;
}

#define SCION_GRID_LOOP(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

template <class W>
__global__ void strided_assign_kernel(W* dst, const W* src, int64_t n, Dims d) {
  SCION_GRID_LOOP(i, n) {
    int64_t off = 0, r = i;
    for (int k = d.ndim - 1; k >= 0; --k) {
      off += (r % d.shape[k]) * d.s0[k];
      r /= d.shape[k];
    }
    dst[off] = src[i];
  }
}

__global__ void index_select_kernel(const float* x, const int64_t* idx, float* y, int64_t outer, int64_t n, int64_t k,
                                    int64_t inner) {
  const int64_t total = outer * k * inner;
  SCION_GRID_LOOP(e, total) {
    const int64_t j = e % inner, i = (e / inner) % k, o = e / (inner * k);
    y[e] = x[(o * n + idx[i]) * inner + j];
  }
}

// One thread per (o, j): adds every i in order (the CPU's order for that element).
__global__ void index_add_kernel(const float* gy, const int64_t* idx, float* gx, int64_t outer, int64_t n, int64_t k,
                                 int64_t inner) {
  SCION_GRID_LOOP(e, outer * inner) {
    const int64_t j = e % inner, o = e / inner;
    for (int64_t i = 0; i < k; ++i) gx[(o * n + idx[i]) * inner + j] += gy[(o * k + i) * inner + j];
  }
}

__global__ void take_kernel(const float* x, const int64_t* off, float* y, int64_t total) {
  SCION_GRID_LOOP(e, total) y[e] = x[off[e]];
}

__global__ void take_backward_kernel(const float* gy, const int64_t* off, float* gx, int64_t lead, int64_t len,
                                     int64_t trail) {
  SCION_GRID_LOOP(e, lead * trail) {
    const int64_t t = e % trail, l = e / trail;
    for (int64_t i = 0; i < len; ++i) {
      const int64_t p = (l * len + i) * trail + t;
      gx[off[p]] += gy[p];
    }
  }
}

__global__ void where_kernel(const uint8_t* c, const float* x, float xv, const float* y, float yv, float* out,
                             int64_t n, Dims d) {
  SCION_GRID_LOOP(i, n) {
    int64_t co = 0, xo = 0, yo = 0, r = i;
    for (int k = d.ndim - 1; k >= 0; --k) {
      const int64_t q = r % d.shape[k];
      co += q * d.s0[k];
      xo += q * d.s1[k];
      yo += q * d.s2[k];
      r /= d.shape[k];
    }
    out[i] = c[co] ? (x ? x[xo] : xv) : (y ? y[yo] : yv);
  }
}

__global__ void max_backward_kernel(const float* gy, const int64_t* ip, float* gx, int64_t outer, int64_t n,
                                    int64_t inner) {
  SCION_GRID_LOOP(e, outer * inner) {
    const int64_t j = e % inner, o = e / inner;
    gx[(o * n + ip[e]) * inner + j] = gy[e];
  }
}

}  // namespace

void strided_assign(void* dst, const int64_t* dst_strides, const void* src, const int64_t* shape, int ndim,
                    size_t es, void* stream) {
  int64_t n = 0;
  const Dims d = make_dims(shape, ndim, dst_strides, nullptr, nullptr, n);
  if (n == 0) return;
  const cudaStream_t s = as_stream(stream);
  const unsigned g = grid1d(n), t = launch::kElementwiseThreads;
  switch (es) {
    case 1: strided_assign_kernel<<<g, t, 0, s>>>(static_cast<uint8_t*>(dst), static_cast<const uint8_t*>(src), n, d); break;
    case 2: strided_assign_kernel<<<g, t, 0, s>>>(static_cast<uint16_t*>(dst), static_cast<const uint16_t*>(src), n, d); break;
    case 4: strided_assign_kernel<<<g, t, 0, s>>>(static_cast<uint32_t*>(dst), static_cast<const uint32_t*>(src), n, d); break;
    default: strided_assign_kernel<<<g, t, 0, s>>>(static_cast<uint64_t*>(dst), static_cast<const uint64_t*>(src), n, d); break;
  }
  check_launch("cuda::strided_assign");
}

void index_select(const float* x, const int64_t* idx, float* y, int64_t outer, int64_t n, int64_t k, int64_t inner,
                  void* stream) {
  const int64_t total = outer * k * inner;
  if (total == 0) return;
  index_select_kernel<<<grid1d(total), launch::kElementwiseThreads, 0, as_stream(stream)>>>(x, idx, y, outer, n, k,
                                                                                           inner);
  check_launch("cuda::index_select");
}

void index_add(const float* gy, const int64_t* idx, float* gx, int64_t outer, int64_t n, int64_t k, int64_t inner,
               void* stream) {
  if (outer * inner == 0 || k == 0) return;
  index_add_kernel<<<grid1d(outer * inner), launch::kElementwiseThreads, 0, as_stream(stream)>>>(gy, idx, gx, outer, n,
                                                                                                k, inner);
  check_launch("cuda::index_add");
}

void take(const float* x, const int64_t* offsets, float* y, int64_t total, void* stream) {
  if (total == 0) return;
  take_kernel<<<grid1d(total), launch::kElementwiseThreads, 0, as_stream(stream)>>>(x, offsets, y, total);
  check_launch("cuda::take");
}

void take_backward(const float* gy, const int64_t* offsets, float* gx, int64_t lead, int64_t len, int64_t trail,
                   void* stream) {
  if (lead * trail == 0 || len == 0) return;
  take_backward_kernel<<<grid1d(lead * trail), launch::kElementwiseThreads, 0, as_stream(stream)>>>(gy, offsets, gx,
                                                                                                   lead, len, trail);
  check_launch("cuda::take_backward");
}

void where(const uint8_t* cond, const int64_t* c_strides, const float* x, const int64_t* x_strides, float xv,
           const float* y, const int64_t* y_strides, float yv, float* out, const int64_t* shape, int ndim,
           void* stream) {
  int64_t n = 0;
  const Dims d = make_dims(shape, ndim, c_strides, x ? x_strides : nullptr, y ? y_strides : nullptr, n);
  if (n == 0) return;
  where_kernel<<<grid1d(n), launch::kElementwiseThreads, 0, as_stream(stream)>>>(cond, x, xv, y, yv, out, n, d);
  check_launch("cuda::where");
}

void max_backward(const float* gy, const int64_t* argmax, float* gx, int64_t outer, int64_t n, int64_t inner,
                  void* stream) {
  if (outer * inner == 0) return;
  max_backward_kernel<<<grid1d(outer * inner), launch::kElementwiseThreads, 0, as_stream(stream)>>>(gy, argmax, gx,
                                                                                                   outer, n, inner);
  check_launch("cuda::max_backward");
}

}  // namespace scion::cuda
