// Flash-attention forward: per query tile, keys and values stream through shared memory and an
// online softmax (running max m, running sum l, output rescaled when m grows) accumulates the
// output in registers. Only the output and the per-row log-sum-exp reach device memory.
#include "cuda/attention.cuh"

namespace scion::cuda {
namespace {
using namespace attn;

template <class T, int DMAX>
__global__ void __launch_bounds__(kThreads) attention_fwd_kernel(AttentionShape s, const T* q, const T* k,
                                                                  const T* v, T* out, float* lse, float scale) {
  constexpr int DL = DMAX / kLanes;
  __shared__ float Ks[kKeys][DMAX + 1];
  __shared__ float Vs[kKeys][DMAX + 1];
  __shared__ bool kvalid[kKeys];
  const int64_t bh = blockIdx.y, b = bh / s.H, h = bh % s.H;
  const int64_t qt = blockIdx.x;
  const int row = threadIdx.x / kLanes, lane = threadIdx.x % kLanes;
  const int64_t i = qt * kRows + row;
  const bool in_range = i < s.T;
  const uint8_t* km = s.key_mask ? s.key_mask + b * s.T : nullptr;

  float qr[DL], o[DL];
  // q pre-scaled by 1/sqrt(D), so a dot product is the scaled score directly.
  load_slice(qr, q + b * s.q_bstride + i * s.q_tstride + h * s.D, s.D, lane, in_range, scale);
#pragma unroll
  for (int kk = 0; kk < DL; ++kk) o[kk] = 0.f;
  float m = -INFINITY, l = 0.f;

  const int64_t key_tiles = s.causal ? launch::causal_key_tiles(qt, s.T) : launch::ceil_div(s.T, kKeys);
  const T* kbase = k + b * s.k_bstride + h * s.D;
  const T* vbase = v + b * s.v_bstride + h * s.D;
  for (int64_t kt = 0; kt < key_tiles; ++kt) {
    const int64_t key0 = kt * kKeys;
    load_tile<DMAX>(Ks, kbase, s.k_tstride, key0, s.T, s.D);
    load_tile<DMAX>(Vs, vbase, s.v_tstride, key0, s.T, s.D);
    if (threadIdx.x < kKeys) {
      const int64_t key = key0 + threadIdx.x;
      kvalid[threadIdx.x] = key < s.T && (!km || km[key]);
    }
    __syncthreads();

    float sc[kKeys];
    float tile_max = -INFINITY;
#pragma unroll
    for (int j = 0; j < kKeys; ++j) {
      const float dot = quad_sum(slice_dot<DMAX>(qr, Ks, j, lane));
      const bool visible = kvalid[j] && (!s.causal || key0 + j <= i);
      sc[j] = visible ? dot : -INFINITY;
      tile_max = fmaxf(tile_max, sc[j]);
    }
    const float m_new = fmaxf(m, tile_max);
    if (m_new != -INFINITY) {  // else every key so far is hidden from this row: nothing to add
      const float alpha = __expf(m - m_new);  // 0 on the first visible tile (m = -inf)
      l *= alpha;
#pragma unroll
      for (int kk = 0; kk < DL; ++kk) o[kk] *= alpha;
#pragma unroll
      for (int j = 0; j < kKeys; ++j) {
        const float p = __expf(sc[j] - m_new);  // hidden keys: exp(-inf) = 0
        l += p;
#pragma unroll
        for (int kk = 0; kk < DL; ++kk) o[kk] += p * Vs[j][lane + kLanes * kk];
      }
      m = m_new;
    }
    __syncthreads();  // before the next tile overwrites Ks/Vs
  }

  if (!in_range) return;
  const int64_t C = s.H * s.D;
  T* orow = out + (b * s.T + i) * C + h * s.D;
  if (l == 0.f) {  // all keys hidden: zeros, and lse = +inf so backward sees p = 0 (as the CPU)
    store_slice(o, orow, s.D, lane, 0.f);
    if (lane == 0) lse[bh * s.T + i] = INFINITY;
    return;
  }
  store_slice(o, orow, s.D, lane, 1.f / l);
  if (lane == 0) lse[bh * s.T + i] = m + logf(l);
}

template <class T>
void forward_any(const AttentionShape& s, const T* q, const T* k, const T* v, T* out, float* lse, cudaStream_t st) {
  if (s.B == 0 || s.T == 0 || s.H == 0) return;
  const int dmax = launch::attention_dmax(s.D);
  if (dmax == 0 || s.D < 1) throw std::invalid_argument("cuda::attention_forward: head size must be 1..128");
  if (s.B * s.H > 65535) throw std::invalid_argument("cuda::attention_forward: B*H above 65535");
  const dim3 grid(unsigned(launch::ceil_div(s.T, kRows)), unsigned(s.B * s.H));
  const float scale = 1.f / std::sqrt(float(s.D));
  switch (dmax) {
    case 32: attention_fwd_kernel<T, 32><<<grid, kThreads, 0, st>>>(s, q, k, v, out, lse, scale); break;
    case 64: attention_fwd_kernel<T, 64><<<grid, kThreads, 0, st>>>(s, q, k, v, out, lse, scale); break;
    default: attention_fwd_kernel<T, 128><<<grid, kThreads, 0, st>>>(s, q, k, v, out, lse, scale); break;
  }
  check_launch("cuda::attention_forward");
}

}  // namespace

void attention_forward(const AttentionShape& s, const float* q, const float* k, const float* v, float* out,
                       float* lse, void* stream) {
  forward_any(s, q, k, v, out, lse, as_stream(stream));
}
void attention_forward_bf16(const AttentionShape& s, const uint16_t* q, const uint16_t* k, const uint16_t* v,
                            uint16_t* out, float* lse, void* stream) {
  forward_any(s, q, k, v, out, lse, as_stream(stream));
}

}  // namespace scion::cuda
