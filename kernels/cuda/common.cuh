// Device-side helpers shared by the .cu files: error checks, the stream cast, bf16 conversions
// that round exactly like scion/dtype.h, the counter RNG on the device, and fixed-order block
// reductions.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <climits>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "cuda/cuda_kernels.h"
#include "cuda/launch.h"
#include "scion/random.h"

namespace scion::cuda::detail {

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("CUDA error in ") + what + ": " + cudaGetErrorString(e));
}
// After a launch: configuration errors are reported at once; faults inside the kernel surface at
// the next synchronising call (check_last_error).
inline void check_launch(const char* what) { check(cudaGetLastError(), what); }

inline cudaStream_t as_stream(void* s) { return static_cast<cudaStream_t>(s); }

// Stream-ordered scratch (reduction partials, sort buffers): cudaMallocAsync draws from the
// device's memory pool, so after the first step these cost no cudaMalloc and never synchronise,
// and a buffer freed on a stream is reused only by work ordered after it.
class Scratch {
 public:
  Scratch(size_t bytes, cudaStream_t s) : s_(s) {
    if (bytes) check(cudaMallocAsync(&p_, bytes, s), "cudaMallocAsync (scratch)");
  }
  ~Scratch() {
    if (p_) cudaFreeAsync(p_, s_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <class T>
  T* as() const { return static_cast<T*>(p_); }

 private:
  void* p_ = nullptr;
  cudaStream_t s_;
};

// ---- element types ------------------------------------------------------------------------------
// bf16 travels as raw uint16_t bits; these conversions are bit-identical to scion/dtype.h
// (round to nearest even, NaN kept quiet), so a bf16 tensor is the same on both devices.
__device__ __forceinline__ float bf16_to_f32(uint16_t h) { return __uint_as_float(uint32_t(h) << 16); }
__device__ __forceinline__ uint16_t f32_to_bf16(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

// Load/store with an f32 register type, for kernels templated on the storage type.
template <class T> struct Elem;
template <> struct Elem<float> {
  __device__ __forceinline__ static float load(const float* p, int64_t i) { return p[i]; }
  __device__ __forceinline__ static void store(float* p, int64_t i, float v) { p[i] = v; }
};
template <> struct Elem<uint16_t> {  // bf16
  __device__ __forceinline__ static float load(const uint16_t* p, int64_t i) { return bf16_to_f32(p[i]); }
  __device__ __forceinline__ static void store(uint16_t* p, int64_t i, float v) { p[i] = f32_to_bf16(v); }
};
template <class T>
__device__ __forceinline__ float ld(const T* p, int64_t i) { return Elem<T>::load(p, i); }
template <class T>
__device__ __forceinline__ void st(T* p, int64_t i, float v) { Elem<T>::store(p, i, v); }

// ---- random: scion/random.h's mix64/random_bits are constexpr, so --expt-relaxed-constexpr lets
// device code call them; the float steps are repeated here with the same arithmetic.
__device__ __forceinline__ float dev_uniform(uint64_t seed, uint64_t i) {
  return float(random_bits(seed, i) >> 40) * (1.0f / 16777216.0f);
}
__device__ __forceinline__ float dev_normal(uint64_t seed, uint64_t i) {
  const uint64_t r = random_bits(seed, i);
  const float u1 = (float(r >> 40) + 0.5f) * (1.0f / 16777216.0f);
  const float u2 = float((r >> 8) & 0xffffffu) * (1.0f / 16777216.0f);
  return sqrtf(-2.0f * logf(u1)) * cosf(6.283185307179586f * u2);
}

// ---- reductions -------------------------------------------------------------------------------------
// Warp and block reductions with a fixed shape (xor butterfly, then warp results combined by
// warp 0 in lane order): the result depends only on the values and the block size.
template <class T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
// Every thread of the block gets the total. `shared` holds >= 32 values; blockDim.x is a
// multiple of 32. Ends with a barrier so `shared` can be reused straight away.
template <class T>
__device__ T block_sum(T v, T* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_sum(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  T t = lane < warps ? shared[lane] : T(0);
  t = warp_sum(t);
  __syncthreads();
  return t;
}
__device__ inline float block_max(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_max(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  float t = lane < warps ? shared[lane] : -INFINITY;
  t = warp_max(t);
  __syncthreads();
  return t;
}

// Online softmax state (running max m, sum s of exp(x - m)), merged associatively; the merge
// order is fixed by the reduction shape above, so the result is deterministic. The sum is f64,
// as on the CPU (kernels/cpu/vec_math.h, sum_exp): an f32 sum of a vocabulary's exponentials
// rounds at the size of the total and biases a flat softmax's log-sum-exp low. Rescales (rare:
// a new maximum, a merge) use the f64 exp so they add no rounding of their own.
struct MaxSum {
  float m;
  double s;
};
struct MaxSumShared {
  float m[32];
  double s[32];
};
__device__ __forceinline__ MaxSum maxsum_merge(MaxSum a, MaxSum b) {
  const float m = fmaxf(a.m, b.m);
  if (m == -INFINITY) return {m, 0.0};  // both empty: avoid (-inf) - (-inf)
  return {m, a.s * exp(double(a.m) - double(m)) + b.s * exp(double(b.m) - double(m))};
}
__device__ __forceinline__ MaxSum maxsum_add(MaxSum a, float x) {
  if (x <= a.m) return {a.m, a.s + double(__expf(x - a.m))};
  // new maximum (also the first finite value: a.m = -inf gives exp(-inf) = 0)
  return {x, a.s * exp(double(a.m) - double(x)) + 1.0};
}
// Every thread gets the block's (max, sum). Ends with a barrier so `shared` can be reused.
__device__ inline MaxSum block_maxsum(MaxSum v, MaxSumShared& shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    MaxSum u{__shfl_xor_sync(0xffffffffu, v.m, o), __shfl_xor_sync(0xffffffffu, v.s, o)};
    v = maxsum_merge(v, u);
  }
  if (lane == 0) {
    shared.m[warp] = v.m;
    shared.s[warp] = v.s;
  }
  __syncthreads();
  MaxSum t = lane < warps ? MaxSum{shared.m[lane], shared.s[lane]} : MaxSum{-INFINITY, 0.0};
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    MaxSum u{__shfl_xor_sync(0xffffffffu, t.m, o), __shfl_xor_sync(0xffffffffu, t.s, o)};
    t = maxsum_merge(t, u);
  }
  __syncthreads();
  return t;
}

// The (max, sum of exp(x * inv_t)) of a row of n, read once by the block (softmax, cross-entropy).
template <class T>
__device__ __forceinline__ MaxSum row_maxsum(const T* x, int64_t n, float inv_t, MaxSumShared& sh) {
  MaxSum a{-INFINITY, 0.0};
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) a = maxsum_add(a, ld(x, i) * inv_t);
  return block_maxsum(a, sh);
}

inline unsigned grid1d(int64_t n, int64_t per_thread = 1) {
  return unsigned(launch::elementwise_blocks(n, per_thread));
}
// One block per row: the grid of a row kernel.
inline unsigned rows_grid(int64_t rows, const char* what) {
  if (rows > 0x7fffffff) throw std::invalid_argument(std::string(what) + ": too many rows");
  return unsigned(rows);
}

}  // namespace scion::cuda::detail
