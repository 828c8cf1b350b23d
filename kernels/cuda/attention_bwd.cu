// Flash-attention backward, deterministic: instead of FlashAttention-2's atomic dQ accumulation,
// two kernels each own their outputs outright:
//   * dK/dV: a block per key tile streams the query tiles (Q, dO, lse, Di) through shared memory
//     and accumulates dK and dV for its keys in registers;
//   * dQ: a block per query tile streams the key tiles (K, V) and accumulates dQ.
// Both recompute P = exp(scale q.k - lse) from the saved log-sum-exp; the T x T matrix never
// exists. The price is computing q.k twice (about 1.4x the FLOPs of the atomic scheme).
// Di = dO_i . O_i (= sum_j P_ij dP_ij) is computed once by a small kernel.
#include "cuda/attention.cuh"

namespace scion::cuda {
namespace {
using namespace attn;

// Di for every (b, h, i): one quad per row, the same slice layout as the main kernels.
template <class T>
__global__ void attention_di_kernel(AttentionShape s, const T* out, const T* gout, float* di) {
  const int64_t r = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / kLanes;  // over B*H*T
  const int lane = threadIdx.x % kLanes;
  const bool ok = r < s.B * s.H * s.T;
  const int64_t b = ok ? r / (s.H * s.T) : 0, h = ok ? (r / s.T) % s.H : 0, i = ok ? r % s.T : 0;
  const int64_t off = (b * s.T + i) * s.H * s.D + h * s.D;
  float acc = 0.f;
  if (ok)
    for (int64_t d = lane; d < s.D; d += kLanes) acc += ld(out, off + d) * ld(gout, off + d);
  acc = quad_sum(acc);
  if (ok && lane == 0) di[(b * s.H + h) * s.T + i] = acc;
}

template <class T, int DMAX>
__global__ void __launch_bounds__(kThreads) attention_dkdv_kernel(AttentionShape s, const T* q, const T* k,
                                                                   const T* v, const float* lse, const float* di,
                                                                   const T* gout, T* gk, T* gv, float scale) {
  constexpr int DL = DMAX / kLanes;
  __shared__ float Qs[kRows][DMAX + 1];
  __shared__ float Gs[kRows][DMAX + 1];  // dO
  __shared__ float Ls[kRows], Ds[kRows];
  const int64_t bh = blockIdx.y, b = bh / s.H, h = bh % s.H;
  const int64_t kt = blockIdx.x;
  const int row = threadIdx.x / kLanes, lane = threadIdx.x % kLanes;
  const int64_t j = kt * kKeys + row;  // this quad's key
  const bool in_range = j < s.T;
  const bool key_on = in_range && (!s.key_mask || s.key_mask[b * s.T + j]);
  const int64_t C = s.H * s.D;

  float kr[DL], vr[DL], dk[DL], dv[DL];
  load_slice(kr, k + b * s.k_bstride + j * s.k_tstride + h * s.D, s.D, lane, in_range, scale);  // pre-scaled
  load_slice(vr, v + b * s.v_bstride + j * s.v_tstride + h * s.D, s.D, lane, in_range);
#pragma unroll
  for (int kk = 0; kk < DL; ++kk) dk[kk] = dv[kk] = 0.f;

  const int64_t q_tiles = launch::ceil_div(s.T, kRows);
  const int64_t first = s.causal ? launch::causal_first_query_tile(kt) : 0;
  const T* qbase = q + b * s.q_bstride + h * s.D;
  const T* gbase = gout + b * s.T * C + h * s.D;
  for (int64_t qt = first; qt < q_tiles; ++qt) {
    const int64_t q0 = qt * kRows;
    load_tile<DMAX>(Qs, qbase, s.q_tstride, q0, s.T, s.D);
    load_tile<DMAX>(Gs, gbase, C, q0, s.T, s.D);
    if (threadIdx.x < kRows) {
      const int64_t i = q0 + threadIdx.x;
      // Rows past T get lse = +inf, so their p is exactly 0.
      Ls[threadIdx.x] = i < s.T ? lse[bh * s.T + i] : INFINITY;
      Ds[threadIdx.x] = i < s.T ? di[bh * s.T + i] : 0.f;
    }
    __syncthreads();
#pragma unroll 4
    for (int r = 0; r < kRows; ++r) {
      const int64_t i = q0 + r;
      const float sc = quad_sum(slice_dot<DMAX>(kr, Qs, r, lane));
      const bool visible = key_on && i < s.T && (!s.causal || j <= i);
      const float p = visible ? __expf(sc - Ls[r]) : 0.f;
      const float dp = quad_sum(slice_dot<DMAX>(vr, Gs, r, lane));
      const float ds = p * (dp - Ds[r]);
#pragma unroll
      for (int kk = 0; kk < DL; ++kk) {
        dv[kk] += p * Gs[r][lane + kLanes * kk];
        dk[kk] += ds * Qs[r][lane + kLanes * kk];
      }
    }
    __syncthreads();
  }
  if (!in_range) return;
  store_slice(dk, gk + (b * s.T + j) * C + h * s.D, s.D, lane, scale);
  store_slice(dv, gv + (b * s.T + j) * C + h * s.D, s.D, lane);
}

template <class T, int DMAX>
__global__ void __launch_bounds__(kThreads) attention_dq_kernel(AttentionShape s, const T* q, const T* k,
                                                                 const T* v, const float* lse, const float* di,
                                                                 const T* gout, T* gq, float scale) {
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
  const int64_t C = s.H * s.D;

  float qr[DL], gr[DL], dq[DL];
  load_slice(qr, q + b * s.q_bstride + i * s.q_tstride + h * s.D, s.D, lane, in_range, scale);
  load_slice(gr, gout + (b * s.T + i) * C + h * s.D, s.D, lane, in_range);
#pragma unroll
  for (int kk = 0; kk < DL; ++kk) dq[kk] = 0.f;
  const float L = in_range ? lse[bh * s.T + i] : INFINITY;
  const float Di = in_range ? di[bh * s.T + i] : 0.f;

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
#pragma unroll 4
    for (int jj = 0; jj < kKeys; ++jj) {
      const float sc = quad_sum(slice_dot<DMAX>(qr, Ks, jj, lane));
      const bool visible = kvalid[jj] && (!s.causal || key0 + jj <= i);
      const float p = visible ? __expf(sc - L) : 0.f;
      const float dp = quad_sum(slice_dot<DMAX>(gr, Vs, jj, lane));
      const float ds = p * (dp - Di);
#pragma unroll
      for (int kk = 0; kk < DL; ++kk) dq[kk] += ds * Ks[jj][lane + kLanes * kk];
    }
    __syncthreads();
  }
  if (!in_range) return;
  store_slice(dq, gq + (b * s.T + i) * C + h * s.D, s.D, lane, scale);
}

template <class T, int DMAX>
void backward_launch(const AttentionShape& s, const T* q, const T* k, const T* v, const float* lse,
                     const float* di, const T* gout, T* gq, T* gk, T* gv, float scale, cudaStream_t st) {
  const dim3 grid(unsigned(launch::ceil_div(s.T, kRows)), unsigned(s.B * s.H));
  attention_dkdv_kernel<T, DMAX><<<grid, kThreads, 0, st>>>(s, q, k, v, lse, di, gout, gk, gv, scale);
  attention_dq_kernel<T, DMAX><<<grid, kThreads, 0, st>>>(s, q, k, v, lse, di, gout, gq, scale);
}

template <class T>
void backward_any(const AttentionShape& s, const T* q, const T* k, const T* v, const T* out, const float* lse,
                  const T* gout, T* gq, T* gk, T* gv, cudaStream_t st) {
  if (s.B == 0 || s.T == 0 || s.H == 0) return;
  const int dmax = launch::attention_dmax(s.D);
  if (dmax == 0 || s.D < 1) throw std::invalid_argument("cuda::attention_backward: head size must be 1..128");
  if (s.B * s.H > 65535) throw std::invalid_argument("cuda::attention_backward: B*H above 65535");
  const int64_t rows = s.B * s.H * s.T;
  Scratch di(size_t(rows) * sizeof(float), st);
  attention_di_kernel<<<unsigned(launch::ceil_div(rows * kLanes, 256)), 256, 0, st>>>(s, out, gout, di.as<float>());
  const float scale = 1.f / std::sqrt(float(s.D));
  switch (dmax) {
    case 32: backward_launch<T, 32>(s, q, k, v, lse, di.as<float>(), gout, gq, gk, gv, scale, st); break;
    case 64: backward_launch<T, 64>(s, q, k, v, lse, di.as<float>(), gout, gq, gk, gv, scale, st); break;
    default: backward_launch<T, 128>(s, q, k, v, lse, di.as<float>(), gout, gq, gk, gv, scale, st); break;
  }
  check_launch("cuda::attention_backward");
}

}  // namespace

void attention_backward(const AttentionShape& s, const float* q, const float* k, const float* v, const float* out,
                        const float* lse, const float* gout, float* gq, float* gk, float* gv, void* stream) {
  backward_any(s, q, k, v, out, lse, gout, gq, gk, gv, as_stream(stream));
}
void attention_backward_bf16(const AttentionShape& s, const uint16_t* q, const uint16_t* k, const uint16_t* v,
                             const uint16_t* out, const float* lse, const uint16_t* gout, uint16_t* gq,
                             uint16_t* gk, uint16_t* gv, void* stream) {
  backward_any(s, q, k, v, out, lse, gout, gq, gk, gv, as_stream(stream));
}

}  // namespace scion::cuda
