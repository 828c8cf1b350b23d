// Shared pieces of the flash-attention kernels (attention_fwd.cu, attention_bwd.cu).
//
// Layout of the work: a block owns 32 "rows" (query rows in forward and dQ, key rows in dK/dV);
// each row is served by a quad of 4 consecutive threads (one warp holds 8 rows) that split the
// head dimension interleaved (lane l owns dims l, l+4, l+8, ...), so a dot product is a partial
// sum per lane plus two xor shuffles, and the quad's reads of a shared-memory row hit 4 adjacent
// banks while the warp's 8 rows read the same addresses (a broadcast). The other operand streams
// through shared memory 32 rows at a time; the T x T scores exist only as 32 registers per
// thread in forward (one tile) and one value at a time in backward.
//
// This is the CUDA-core (FFMA) version: correct first, and the fallback for any head size up to
// 128. A tensor-core (mma.sync / wgmma) variant is the planned next step for the GPT-2 benchmark.
#pragma once
#include "cuda/common.cuh"

namespace scion::cuda::attn {
using namespace detail;

constexpr int kLanes = launch::kAttnLanes;
constexpr int kRows = launch::kAttnRows;
constexpr int kKeys = launch::kAttnKeys;
constexpr int kThreads = launch::kAttnThreads;
static_assert(kRows == kKeys, "the dK/dV kernel swaps the roles of the two tile sizes");

__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  v += __shfl_xor_sync(0xffffffffu, v, 2);
  return v;
}

// Loads rows [row0, row0 + kKeys) of a [T, *] operand (row r at base + r * tstride, the head's D
// values contiguous) into tile[kKeys][DMAX + 1] as f32, zero-filling rows past T and dims past D.
template <int DMAX, class T>
__device__ __forceinline__ void load_tile(float (*tile)[DMAX + 1], const T* base, int64_t tstride, int64_t row0,
                                          int64_t Tlen, int64_t D) {
  for (int idx = threadIdx.x; idx < kKeys * DMAX; idx += kThreads) {
    const int r = idx / DMAX, d = idx % DMAX;
    const int64_t row = row0 + r;
    tile[r][d] = (row < Tlen && d < D) ? ld(base, row * tstride + d) : 0.f;
  }
}

// Loads this thread's slice (dims lane, lane+4, ...) of one row into registers, scaled.
template <int DL, class T>
__device__ __forceinline__ void load_slice(float (&r)[DL], const T* row, int64_t D, int lane, bool in_range,
                                           float scale = 1.f) {
#pragma unroll
  for (int k = 0; k < DL; ++k) {
    const int d = lane + kLanes * k;
    r[k] = (in_range && d < D) ? ld(row, d) * scale : 0.f;
  }
}
template <int DL, class T>
__device__ __forceinline__ void store_slice(const float (&r)[DL], T* row, int64_t D, int lane, float scale = 1.f) {
#pragma unroll
  for (int k = 0; k < DL; ++k) {
    const int d = lane + kLanes * k;
    if (d < D) st(row, d, r[k] * scale);
  }
}
// Partial dot product of a register slice with shared-memory row `j`.
template <int DMAX, int DL>
__device__ __forceinline__ float slice_dot(const float (&r)[DL], const float (*tile)[DMAX + 1], int j, int lane) {
  float s = 0.f;
#pragma unroll
  for (int k = 0; k < DL; ++k) s += r[k] * tile[j][lane + kLanes * k];
  return s;
}

}  // namespace scion::cuda::attn
