// Layernorm over the last axis. Forward: one block per row (mean, then variance around it, as on
// the CPU: two passes, no E[x^2]-E[x]^2 cancellation). Backward: one block per row for the input
// gradient, then the parameter gradients as deterministic column sums over fixed row chunks.
#include "cuda/common.cuh"

namespace scion::cuda {
namespace {
using namespace detail;

template <class T>
__global__ void ln_forward_kernel(const T* x, const float* w, const float* b, T* y, float* mean, float* rstd,
                                  int64_t n, float eps) {
  __shared__ float sh[32];
  const int64_t r = blockIdx.x;
  const T* xr = x + r * n;
  T* yr = y + r * n;
  float s = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += ld(xr, i);
  const float m = block_sum(s, sh) / float(n);
  float v = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float d = ld(xr, i) - m;
    v += d * d;
  }
  const float rs = rsqrtf(block_sum(v, sh) / float(n) + eps);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) st(yr, i, (ld(xr, i) - m) * rs * w[i] + b[i]);
  if (threadIdx.x == 0) {
    mean[r] = m;
    rstd[r] = rs;
  }
}

// dx = rstd * (g*w - mean(g*w) - xhat * mean(g*w*xhat))
template <class T>
__global__ void ln_backward_x_kernel(const T* gy, const T* x, const float* w, const float* mean,
                                     const float* rstd, T* gx, int64_t n) {
  __shared__ float sh[32];
  const int64_t r = blockIdx.x;
  const T* g = gy + r * n;
  const T* xr = x + r * n;
  T* out = gx + r * n;
  const float m = mean[r], rs = rstd[r];
  float s1 = 0.f, s2 = 0.f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
    const float gw = ld(g, i) * w[i];
    s1 += gw;
    s2 += gw * (ld(xr, i) - m) * rs;
  }
  s1 = block_sum(s1, sh) / float(n);
  s2 = block_sum(s2, sh) / float(n);
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    st(out, i, rs * (ld(g, i) * w[i] - s1 - (ld(xr, i) - m) * rs * s2));
}

// gw[c] = sum_r g[r,c] * xhat[r,c], gb[c] = sum_r g[r,c]: the column-sum scheme of reduce.cu
// (32 columns x 8 row lanes per block, fixed kRowChunk chunks, chunk partials added in order).
constexpr int kLanes = 8;
template <class T>
__global__ void ln_params_stage1(const T* gy, const T* x, const float* mean, const float* rstd, int64_t rows,
                                 int64_t n, float* pw, float* pb, float* gw, float* gb) {
  __shared__ float sw[kLanes][33], sb[kLanes][33];
  const int64_t c = blockIdx.x * 32 + threadIdx.x;
  const int64_t r0 = int64_t(blockIdx.y) * launch::kRowChunk;
  const int64_t r1 = r0 + launch::kRowChunk < rows ? r0 + launch::kRowChunk : rows;
  float aw = 0.f, ab = 0.f;
  if (c < n)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kLanes) {
      const float g = ld(gy, r * n + c);
      aw += g * (ld(x, r * n + c) - mean[r]) * rstd[r];
      ab += g;
    }
  sw[threadIdx.y][threadIdx.x] = aw;
  sb[threadIdx.y][threadIdx.x] = ab;
  __syncthreads();
  if (threadIdx.y == 0 && c < n) {
    float tw = 0.f, tb = 0.f;
#pragma unroll
    for (int y = 0; y < kLanes; ++y) {
      tw += sw[y][threadIdx.x];
      tb += sb[y][threadIdx.x];
    }
    if (gridDim.y == 1) {
      if (gw) gw[c] = tw;
      if (gb) gb[c] = tb;
    } else {
      pw[blockIdx.y * n + c] = tw;
      pb[blockIdx.y * n + c] = tb;
    }
  }
}
__global__ void ln_params_stage2(const float* pw, const float* pb, int64_t chunks, int64_t n, float* gw, float* gb) {
  const int64_t c = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (c >= n) return;
  double aw = 0.0, ab = 0.0;
  for (int64_t i = 0; i < chunks; ++i) {
    aw += pw[i * n + c];
    ab += pb[i * n + c];
  }
  if (gw) gw[c] = float(aw);
  if (gb) gb[c] = float(ab);
}

template <class T>
void ln_forward_any(const T* x, const float* w, const float* b, T* y, float* mean, float* rstd, int64_t rows,
                    int64_t n, float eps, cudaStream_t s) {
  if (rows == 0 || n == 0) return;
  if (rows > 0x7fffffff) throw std::invalid_argument("cuda::layernorm_forward: too many rows");
  ln_forward_kernel<<<unsigned(rows), launch::row_threads(n), 0, s>>>(x, w, b, y, mean, rstd, n, eps);
  check_launch("cuda::layernorm_forward");
}

template <class T>
void ln_backward_any(const T* gy, const T* x, const float* w, const float* mean, const float* rstd, T* gx,
                     float* gw, float* gb, int64_t rows, int64_t n, cudaStream_t s) {
  if (n == 0) return;
  if (rows > 0x7fffffff) throw std::invalid_argument("cuda::layernorm_backward: too many rows");
  if (rows > 0) ln_backward_x_kernel<<<unsigned(rows), launch::row_threads(n), 0, s>>>(gy, x, w, mean, rstd, gx, n);
  if (gw || gb) {
    if (rows == 0) {
      if (gw) check(cudaMemsetAsync(gw, 0, size_t(n) * sizeof(float), s), "cuda::layernorm_backward");
      if (gb) check(cudaMemsetAsync(gb, 0, size_t(n) * sizeof(float), s), "cuda::layernorm_backward");
      return;
    }
    const int64_t chunks = launch::row_chunks(rows);
    if (chunks > 65535) throw std::invalid_argument("cuda::layernorm_backward: too many rows");
    Scratch partial(chunks > 1 ? 2 * size_t(chunks * n) * sizeof(float) : 0, s);
    float* pw = partial.as<float>();
    float* pb = pw ? pw + chunks * n : nullptr;
    ln_params_stage1<<<dim3(unsigned(launch::ceil_div(n, 32)), unsigned(chunks)), dim3(32, kLanes), 0, s>>>(
        gy, x, mean, rstd, rows, n, pw, pb, gw, gb);
    if (chunks > 1)
      ln_params_stage2<<<unsigned(launch::ceil_div(n, 256)), 256, 0, s>>>(pw, pb, chunks, n, gw, gb);
  }
  check_launch("cuda::layernorm_backward");
}

}  // namespace

void layernorm_forward(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd,
                       int64_t rows, int64_t n, float eps, void* stream) {
  ln_forward_any(x, w, b, y, mean, rstd, rows, n, eps, as_stream(stream));
}
void layernorm_forward_bf16(const uint16_t* x, const float* w, const float* b, uint16_t* y, float* mean,
                            float* rstd, int64_t rows, int64_t n, float eps, void* stream) {
  ln_forward_any(x, w, b, y, mean, rstd, rows, n, eps, as_stream(stream));
}
void layernorm_backward(const float* gy, const float* x, const float* w, const float* mean, const float* rstd,
                        float* gx, float* gw, float* gb, int64_t rows, int64_t n, void* stream) {
  ln_backward_any(gy, x, w, mean, rstd, gx, gw, gb, rows, n, as_stream(stream));
}
void layernorm_backward_bf16(const uint16_t* gy, const uint16_t* x, const float* w, const float* mean,
                             const float* rstd, uint16_t* gx, float* gw, float* gb, int64_t rows, int64_t n,
                             void* stream) {
  ln_backward_any(gy, x, w, mean, rstd, gx, gw, gb, rows, n, as_stream(stream));
}

}  // namespace scion::cuda
