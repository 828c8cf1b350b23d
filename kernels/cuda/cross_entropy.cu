// Fused softmax cross-entropy (hard and soft targets). One block per row; the first pass keeps
// an online (max, sum-of-exp) pair per thread, so the row is read once for both, and
// probabilities are recomputed from the saved log-sum-exp instead of stored.
#include "cuda/common.cuh"

namespace scion::cuda {
namespace {
using namespace detail;

// ---- hard-target cross-entropy --------------------------------------------------------------------------
// Counted rows and the first bad target, in one block with fixed-shape (integer) reductions.
__global__ void ce_targets_kernel(const int64_t* targets, int64_t rows, int64_t V, int64_t ignore,
                                  int64_t* count, int64_t* bad_row) {
  __shared__ long long sh[32];
  long long c = 0, bad = LLONG_MAX;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    const int64_t t = targets[r];
    if (t == ignore) continue;
    if (t < 0 || t >= V) bad = bad < r ? bad : r;
    else ++c;
  }
  c = block_sum(c, sh);
  // min by the same butterfly shape
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const long long u = __shfl_xor_sync(0xffffffffu, bad, o);
    bad = u < bad ? u : bad;
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) sh[warp] = bad;
  __syncthreads();
  if (threadIdx.x == 0) {
    long long m = LLONG_MAX;
    for (int w = 0; w < int(blockDim.x >> 5); ++w) m = sh[w] < m ? sh[w] : m;
    *count = c;
    *bad_row = m == LLONG_MAX ? -1 : m;
  }
}

__device__ __forceinline__ bool counted(int64_t t, int64_t V, int64_t ignore) {
  return t != ignore && t >= 0 && t < V;
}

template <class T>
__global__ void ce_forward_kernel(const T* logits, const int64_t* targets, int64_t V, int64_t ignore,
                                  float* loss_rows, float* lse) {
  __shared__ MaxSumShared sh;
  const int64_t r = blockIdx.x;
  const T* x = logits + r * V;
  const MaxSum a = row_maxsum(x, V, 1.f, sh);
  if (threadIdx.x == 0) {
    const float l = float(double(a.m) + ::log(a.s));
    lse[r] = l;
    const int64_t t = targets[r];
    loss_rows[r] = counted(t, V, ignore) ? l - ld(x, t) : 0.f;
  }
}
template <class T>
__global__ void ce_backward_kernel(const T* logits, const int64_t* targets, const float* lse, int64_t V,
                                   int64_t ignore, float scale, T* g) {
  const int64_t r = blockIdx.x;
  const T* x = logits + r * V;
  T* gr = g + r * V;
  const int64_t t = targets[r];
  if (!counted(t, V, ignore)) {
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) st(gr, i, 0.f);
    return;
  }
  const float l = lse[r];
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x)
    st(gr, i, scale * __expf(ld(x, i) - l) - (i == t ? scale : 0.f));
}
// Forward + backward: the gradient pass is the only write of the probabilities.
template <class T>
__global__ void ce_fused_kernel(const T* logits, const int64_t* targets, int64_t V, int64_t ignore,
                                float scale, float* loss_rows, float* lse, T* g) {
  __shared__ MaxSumShared sh;
  __shared__ float target_logit;
  const int64_t r = blockIdx.x;
  const T* x = logits + r * V;
  T* gr = g + r * V;
  const int64_t t = targets[r];
  const bool on = counted(t, V, ignore);
  const MaxSum a = row_maxsum(x, V, 1.f, sh);
  const float l = float(double(a.m) + ::log(a.s));
  // Read the target logit before the gradient pass may overwrite it (g may alias logits).
  if (threadIdx.x == 0) target_logit = on ? ld(x, t) : 0.f;
  __syncthreads();
  if (threadIdx.x == 0) {
    lse[r] = l;
    loss_rows[r] = on ? l - target_logit : 0.f;
  }
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x)
    st(gr, i, on ? scale * __expf(ld(x, i) - l) - (i == t ? scale : 0.f) : 0.f);
}

// ---- soft targets at temperature -----------------------------------------------------------------------
__global__ void soft_ce_forward_kernel(const float* x, const float* t, const uint8_t* mask, int64_t V,
                                       float inv_t, bool kl, float* loss_rows, float* lse_x, float* lse_t) {
  __shared__ MaxSumShared sh;
  __shared__ double shd[32];
  const int64_t r = blockIdx.x;
  const float* xr = x + r * V;
  const float* tr = t + r * V;
  const MaxSum ax = row_maxsum(xr, V, inv_t, sh);
  const MaxSum at = row_maxsum(tr, V, inv_t, sh);
  const float lx = float(double(ax.m) + ::log(ax.s)), lt = float(double(at.m) + ::log(at.s));
  if (threadIdx.x == 0) {
    lse_x[r] = lx;
    lse_t[r] = lt;
  }
  if (mask && !mask[r]) {
    if (threadIdx.x == 0) loss_rows[r] = 0.f;
    return;
  }
  double acc = 0.0;  // f64 like the CPU: many small terms of both signs
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
    const float logp = tr[i] * inv_t - lt;
    const float logq = xr[i] * inv_t - lx;
    const float p = __expf(logp);
    acc += kl ? double(p) * (logp - logq) : -double(p) * logq;
  }
  acc = block_sum(acc, shd);
  if (threadIdx.x == 0) loss_rows[r] = float(acc);
}
__global__ void soft_ce_backward_kernel(const float* x, const float* t, const uint8_t* mask,
                                        const float* lse_x, const float* lse_t, const float* loss_rows,
                                        int64_t V, float inv_t, bool kl, float c, float* gx, float* gt) {
  const int64_t r = blockIdx.x;
  float* gxr = gx ? gx + r * V : nullptr;
  float* gtr = gt ? gt + r * V : nullptr;
  if (mask && !mask[r]) {
    for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
      if (gxr) gxr[i] = 0.f;
      if (gtr) gtr[i] = 0.f;
    }
    return;
  }
  const float* xr = x + r * V;
  const float* tr = t + r * V;
  const float lx = lse_x[r], lt = lse_t[r], val = loss_rows[r];
  for (int64_t i = threadIdx.x; i < V; i += blockDim.x) {
    const float logp = tr[i] * inv_t - lt;
    const float logq = xr[i] * inv_t - lx;
    const float p = __expf(logp), q = __expf(logq);
    if (gxr) gxr[i] = c * (q - p);
    if (gtr) gtr[i] = c * p * ((kl ? logp - logq : -logq) - val);
  }
}

template <class T>
void ce_forward_any(const T* logits, const int64_t* targets, int64_t rows, int64_t V, int64_t ignore,
                    float* loss_rows, float* lse, int64_t* count, int64_t* bad_row, cudaStream_t s) {
  ce_targets_kernel<<<1, 1024, 0, s>>>(targets, rows, V, ignore, count, bad_row);
  if (rows > 0)
    ce_forward_kernel<<<rows_grid(rows, "cuda::cross_entropy_forward"), launch::row_threads(V), 0, s>>>(
        logits, targets, V, ignore, loss_rows, lse);
  check_launch("cuda::cross_entropy_forward");
}
template <class T>
void ce_backward_any(const T* logits, const int64_t* targets, const float* lse, int64_t rows, int64_t V,
                     int64_t ignore, float scale, T* g, cudaStream_t s) {
  if (rows == 0) return;
  ce_backward_kernel<<<rows_grid(rows, "cuda::cross_entropy_backward"), launch::row_threads(V), 0, s>>>(
      logits, targets, lse, V, ignore, scale, g);
  check_launch("cuda::cross_entropy_backward");
}
template <class T>
void ce_fused_any(const T* logits, const int64_t* targets, int64_t rows, int64_t V, int64_t ignore,
                  float scale, float* loss_rows, float* lse, T* g, cudaStream_t s) {
  if (rows == 0) return;
  ce_fused_kernel<<<rows_grid(rows, "cuda::cross_entropy_forward_backward"), launch::row_threads(V), 0, s>>>(
      logits, targets, V, ignore, scale, loss_rows, lse, g);
  check_launch("cuda::cross_entropy_forward_backward");
}

}  // namespace

void cross_entropy_forward(const float* logits, const int64_t* targets, int64_t rows, int64_t V,
                           int64_t ignore_index, float* loss_rows, float* lse, int64_t* count,
                           int64_t* bad_row, void* stream) {
  ce_forward_any(logits, targets, rows, V, ignore_index, loss_rows, lse, count, bad_row, as_stream(stream));
}
void cross_entropy_forward_bf16(const uint16_t* logits, const int64_t* targets, int64_t rows, int64_t V,
                                int64_t ignore_index, float* loss_rows, float* lse, int64_t* count,
                                int64_t* bad_row, void* stream) {
  ce_forward_any(logits, targets, rows, V, ignore_index, loss_rows, lse, count, bad_row, as_stream(stream));
}
void cross_entropy_backward(const float* logits, const int64_t* targets, const float* lse, int64_t rows,
                            int64_t V, int64_t ignore_index, float scale, float* g, void* stream) {
  ce_backward_any(logits, targets, lse, rows, V, ignore_index, scale, g, as_stream(stream));
}
void cross_entropy_backward_bf16(const uint16_t* logits, const int64_t* targets, const float* lse, int64_t rows,
                                 int64_t V, int64_t ignore_index, float scale, uint16_t* g, void* stream) {
  ce_backward_any(logits, targets, lse, rows, V, ignore_index, scale, g, as_stream(stream));
}
void cross_entropy_forward_backward(const float* logits, const int64_t* targets, int64_t rows, int64_t V,
                                    int64_t ignore_index, float scale, float* loss_rows, float* lse, float* g,
                                    void* stream) {
  ce_fused_any(logits, targets, rows, V, ignore_index, scale, loss_rows, lse, g, as_stream(stream));
}
void cross_entropy_forward_backward_bf16(const uint16_t* logits, const int64_t* targets, int64_t rows,
                                         int64_t V, int64_t ignore_index, float scale, float* loss_rows,
                                         float* lse, uint16_t* g, void* stream) {
  ce_fused_any(logits, targets, rows, V, ignore_index, scale, loss_rows, lse, g, as_stream(stream));
}

void soft_cross_entropy_forward(const float* x, const float* t, const uint8_t* mask, int64_t rows, int64_t V,
                                float T, bool kl, float* loss_rows, float* lse_x, float* lse_t, void* stream) {
  if (rows == 0) return;
  soft_ce_forward_kernel<<<rows_grid(rows, "cuda::soft_cross_entropy_forward"), launch::row_threads(V), 0,
                           as_stream(stream)>>>(x, t, mask, V, 1.f / T, kl, loss_rows, lse_x, lse_t);
  check_launch("cuda::soft_cross_entropy_forward");
}
void soft_cross_entropy_backward(const float* x, const float* t, const uint8_t* mask, const float* lse_x,
                                 const float* lse_t, const float* loss_rows, int64_t rows, int64_t V, float T,
                                 bool kl, float scale, float* gx, float* gt, void* stream) {
  if (rows == 0) return;
  const float inv_t = 1.f / T;
  soft_ce_backward_kernel<<<rows_grid(rows, "cuda::soft_cross_entropy_backward"), launch::row_threads(V), 0,
                            as_stream(stream)>>>(x, t, mask, lse_x, lse_t, loss_rows, V, inv_t, kl,
                                                 scale * inv_t, gx, gt);
  check_launch("cuda::soft_cross_entropy_backward");
}

}  // namespace scion::cuda
