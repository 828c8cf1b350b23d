// RMS normalisation over the last axis (Llama's RMSNorm), the twin of cpu/rmsnorm.cpp.
// Forward: one block per row. Backward: one block per row for the input gradient, then the
// weight gradient as deterministic column sums over fixed row chunks (layernorm.cu's scheme).
#include "cuda/common.cuh"

namespace scion::cuda {
namespace {
using namespace detail;

__global__ void rms_forward_kernel(const float* x, const float* w, float* y, float* rstd, int64_t n, float eps) {
  __shared__ float sh[32];
  const int64_t r = blockIdx.x;
  const float* xr = x + r * n;
  float* yr = y + r * n;
  float ss = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss += xr[i] * xr[i];
  const float rs = rsqrtf(block_sum(ss, sh) / float(n) + eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) yr[i] = xr[i] * rs * w[i];
  if (threadIdx.x == 0) rstd[r] = rs;
}

// dx = rstd * (g*w - xhat * mean(g*w*xhat))
__global__ void rms_backward_x_kernel(const float* gy, const float* x, const float* w, const float* rstd, float* gx,
                                      int64_t n) {
  __shared__ float sh[32];
  const int64_t r = blockIdx.x;
  const float* g = gy + r * n;
  const float* xr = x + r * n;
  float* out = gx + r * n;
  const float rs = rstd[r];
  float s = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += g[i] * w[i] * xr[i] * rs;
  s = block_sum(s, sh) / float(n);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) out[i] = rs * (g[i] * w[i] - xr[i] * rs * s);
}

constexpr int kLanes = 8;
__global__ void rms_weight_stage1(const float* gy, const float* x, const float* rstd, int64_t rows, int64_t n,
                                  float* partial, float* gw) {
  __shared__ float sw[kLanes][33];
  const int64_t c = blockIdx.x * 32 + threadIdx.x;
  const int64_t r0 = int64_t(blockIdx.y) * launch::kRowChunk;
  const int64_t r1 = r0 + launch::kRowChunk < rows ? r0 + launch::kRowChunk : rows;
  float acc = 0.f;
  if (c < n)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kLanes) acc += gy[r * n + c] * x[r * n + c] * rstd[r];
  sw[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < n) {
    float t = 0.f;
#pragma unroll
    for (int l = 0; l < kLanes; ++l) t += sw[l][threadIdx.x];
    if (gridDim.y == 1) gw[c] = t;
    else partial[blockIdx.y * n + c] = t;
  }
}
__global__ void rms_weight_stage2(const float* partial, int64_t chunks, int64_t n, float* gw) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= n) return;
  double acc = 0.0;
  for (int64_t i = 0; i < chunks; ++i) acc += partial[i * n + c];
  gw[c] = float(acc);
}

}  // namespace

void rmsnorm_forward(const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t n, float eps,
                     void* stream) {
  if (rows == 0 || n == 0) return;
  if (rows > 0x7fffffff) throw std::invalid_argument("cuda::rmsnorm_forward: too many rows");
  rms_forward_kernel<<<unsigned(rows), launch::row_threads(n), 0, as_stream(stream)>>>(x, w, y, rstd, n, eps);
  check_launch("cuda::rmsnorm_forward");
}

void rmsnorm_backward(const float* gy, const float* x, const float* w, const float* rstd, float* gx, float* gw,
                      int64_t rows, int64_t n, void* stream) {
  cudaStream_t s = as_stream(stream);
  if (n == 0) return;
  if (rows > 0x7fffffff) throw std::invalid_argument("cuda::rmsnorm_backward: too many rows");
  if (rows > 0) rms_backward_x_kernel<<<unsigned(rows), launch::row_threads(n), 0, s>>>(gy, x, w, rstd, gx, n);
  if (gw) {
    if (rows == 0) {
      check(cudaMemsetAsync(gw, 0, size_t(n) * sizeof(float), s), "cuda::rmsnorm_backward");
      return;
    }
    const int64_t chunks = launch::row_chunks(rows);
    if (chunks > 65535) throw std::invalid_argument("cuda::rmsnorm_backward: too many rows");
    Scratch partial(chunks > 1 ? size_t(chunks * n) * sizeof(float) : 0, s);
    rms_weight_stage1<<<dim3(unsigned(launch::ceil_div(n, 32)), unsigned(chunks)), dim3(32, kLanes), 0, s>>>(
        gy, x, rstd, rows, n, partial.as<float>(), gw);
    if (chunks > 1)
      rms_weight_stage2<<<unsigned(launch::ceil_div(n, 256)), 256, 0, s>>>(partial.as<float>(), chunks, n, gw);
  }
  check_launch("cuda::rmsnorm_backward");
}

}  // namespace scion::cuda
