// Row-wise softmax and log-softmax. One block per row; the first pass keeps an online
// (max, sum-of-exp) pair per thread, so the row is read once for both.
#include "cuda/common.cuh"

namespace scion::cuda {
namespace {
using namespace detail;

// ---- softmax / log-softmax --------------------------------------------------------------------------
template <class T>
__global__ void softmax_kernel(const T* x, T* y, int64_t n, bool log) {
  __shared__ MaxSumShared sh;
  const T* xr = x + blockIdx.x * n;
  T* yr = y + blockIdx.x * n;
  MaxSum a = row_maxsum(xr, n, 1.f, sh);
  // A fully masked row (all -inf): the CPU's formula with max 0 and sum 0, kept for parity.
  if (a.m == -INFINITY) a = {0.f, 0.0};
  if (log) {
    const float lse = float(double(a.m) + ::log(a.s));
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) st(yr, i, ld(xr, i) - lse);
  } else {
    const float inv = float(1.0 / a.s);
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) st(yr, i, __expf(ld(xr, i) - a.m) * inv);
  }
}
template <class T>
__global__ void softmax_bwd_kernel(const T* y, const T* gy, T* gx, int64_t n, bool log) {
  __shared__ double sh[32];
  const T* yr = y + blockIdx.x * n;
  const T* gr = gy + blockIdx.x * n;
  T* out = gx + blockIdx.x * n;
  double acc = 0.0;  // f64 like the CPU's softmax_rows_backward
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    acc += log ? double(ld(gr, i)) : double(ld(gr, i)) * double(ld(yr, i));
  const float dot = float(block_sum(acc, sh));
  if (log)
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) st(out, i, ld(gr, i) - __expf(ld(yr, i)) * dot);
  else
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) st(out, i, ld(yr, i) * (ld(gr, i) - dot));
}

}  // namespace

void softmax_rows(const float* x, float* y, int64_t rows, int64_t n, bool log, void* stream) {
  if (rows == 0 || n == 0) return;
  softmax_kernel<<<rows_grid(rows, "cuda::softmax_rows"), launch::row_threads(n), 0, as_stream(stream)>>>(x, y, n, log);
  check_launch("cuda::softmax_rows");
}
void softmax_rows_bf16(const uint16_t* x, uint16_t* y, int64_t rows, int64_t n, bool log, void* stream) {
  if (rows == 0 || n == 0) return;
  softmax_kernel<<<rows_grid(rows, "cuda::softmax_rows"), launch::row_threads(n), 0, as_stream(stream)>>>(x, y, n, log);
  check_launch("cuda::softmax_rows_bf16");
}
void softmax_rows_backward(const float* y, const float* gy, float* gx, int64_t rows, int64_t n, bool log,
                           void* stream) {
  if (rows == 0 || n == 0) return;
  softmax_bwd_kernel<<<rows_grid(rows, "cuda::softmax_rows_backward"), launch::row_threads(n), 0,
                       as_stream(stream)>>>(y, gy, gx, n, log);
  check_launch("cuda::softmax_rows_backward");
}
void softmax_rows_backward_bf16(const uint16_t* y, const uint16_t* gy, uint16_t* gx, int64_t rows, int64_t n,
                                bool log, void* stream) {
  if (rows == 0 || n == 0) return;
  softmax_bwd_kernel<<<rows_grid(rows, "cuda::softmax_rows_backward"), launch::row_threads(n), 0,
                       as_stream(stream)>>>(y, gy, gx, n, log);
  check_launch("cuda::softmax_rows_backward_bf16");
}

}  // namespace scion::cuda
