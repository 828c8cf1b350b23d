// Reductions. Every float sum has a fixed shape that depends only on the problem size
// (launch.h): per-thread runs in a fixed order, fixed-shape block trees, and chunk partials
// added in chunk order, in f64 where the CPU uses f64. No float atomics anywhere.
#include "cuda/common.cuh"

namespace scion::cuda {
namespace {
using namespace detail;

// ---- whole-tensor sums -----------------------------------------------------------------------------
constexpr int kSumThreads = 256;

template <bool SQUARE>
__global__ void sum_partials_kernel(const float* x, int64_t n, int64_t per_block, double* partial) {
  __shared__ double sh[32];
  const int64_t b0 = blockIdx.x * per_block;
  const int64_t b1 = b0 + per_block < n ? b0 + per_block : n;
  double acc = 0.0;
  for (int64_t i = b0 + threadIdx.x; i < b1; i += blockDim.x) {
    const double v = x[i];
    acc += SQUARE ? v * v : v;
  }
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}
// One block adds the partials (at most launch::kMaxSumBlocks of them, one per thread).
__global__ void sum_final_kernel(const double* partial, int count, float* out, double* out_f64) {
  __shared__ double sh[32];
  double acc = 0.0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) {
    if (out) *out = float(acc);
    if (out_f64) *out_f64 = acc;
  }
}

template <bool SQUARE>
void sum_all_impl(const float* x, int64_t n, float* out, double* out_f64, cudaStream_t s) {
  const launch::SumPartition p = launch::sum_partition(n);
  Scratch partial(size_t(p.blocks) * sizeof(double), s);
  sum_partials_kernel<SQUARE><<<unsigned(p.blocks), kSumThreads, 0, s>>>(x, n, p.per_block, partial.as<double>());
  sum_final_kernel<<<1, 1024, 0, s>>>(partial.as<double>(), int(p.blocks), out, out_f64);
  check_launch(SQUARE ? "cuda::sum_squares" : "cuda::sum_all");
}

// ---- column sums: out[o, c] = sum_r x[o, r, c] over [outer, rows, cols] -----------------------------
// Stage 1: block (32 columns x 8 row lanes) sums one kRowChunk-row chunk; lane y takes rows
// y, y+8, ... of the chunk in order; the 8 lane sums are added in lane order. Stage 2 adds the
// chunk sums in chunk order (f64). With a single chunk stage 1 writes the result.
constexpr int kColLanes = 8;

template <class T>
__global__ void colsum_stage1(const T* x, int64_t rows, int64_t cols, int64_t col_blocks,
                              float* partial, float* out) {
  __shared__ float sh[kColLanes][33];
  const int64_t o = blockIdx.x / col_blocks;
  const int64_t c = (blockIdx.x % col_blocks) * 32 + threadIdx.x;
  const int64_t r0 = int64_t(blockIdx.y) * launch::kRowChunk;
  const int64_t r1 = r0 + launch::kRowChunk < rows ? r0 + launch::kRowChunk : rows;
  float acc = 0.f;
  if (c < cols)
    for (int64_t r = r0 + threadIdx.y; r < r1; r += kColLanes) acc += ld(x, (o * rows + r) * cols + c);
  sh[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  if (threadIdx.y == 0 && c < cols) {
    float t = 0.f;
#pragma unroll
    for (int y = 0; y < kColLanes; ++y) t += sh[y][threadIdx.x];
    if (gridDim.y == 1) out[o * cols + c] = t;
    else partial[(o * gridDim.y + blockIdx.y) * cols + c] = t;
  }
}
__global__ void colsum_stage2(const float* partial, int64_t chunks, int64_t outer, int64_t cols, float* out) {
  const int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (k >= outer * cols) return;
  const int64_t o = k / cols, c = k % cols;
  double acc = 0.0;
  for (int64_t i = 0; i < chunks; ++i) acc += partial[(o * chunks + i) * cols + c];
  out[k] = float(acc);
}

template <class T>
void colsum(const T* x, float* out, int64_t outer, int64_t rows, int64_t cols, cudaStream_t s) {
  if (outer == 0 || cols == 0) return;
  if (rows == 0) {
    check(cudaMemsetAsync(out, 0, size_t(outer * cols) * sizeof(float), s), "cuda::colsum");
    return;
  }
  const int64_t chunks = launch::row_chunks(rows);
  if (chunks > 65535) throw std::invalid_argument("cuda::colsum: too many rows");
  const int64_t col_blocks = launch::ceil_div(cols, 32);
  Scratch partial(chunks > 1 ? size_t(outer * chunks * cols) * sizeof(float) : 0, s);
  colsum_stage1<<<dim3(unsigned(outer * col_blocks), unsigned(chunks)), dim3(32, kColLanes), 0, s>>>(
      x, rows, cols, col_blocks, partial.as<float>(), out);
  if (chunks > 1)
    colsum_stage2<<<unsigned(launch::ceil_div(outer * cols, 256)), 256, 0, s>>>(partial.as<float>(), chunks,
                                                                                outer, cols, out);
  check_launch("cuda::colsum");
}

// ---- row sums (inner == 1): one block per row ------------------------------------------------------
__global__ void rowsum_kernel(const float* x, float* y, int64_t n) {
  __shared__ double sh[32];
  const float* p = x + blockIdx.x * n;
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) acc += p[i];
  acc = block_sum(acc, sh);
  if (threadIdx.x == 0) y[blockIdx.x] = float(acc);
}

// ---- max / argmax -------------------------------------------------------------------------------------
// The CPU's rule: the first NaN wins; otherwise the largest value, ties to the smallest index.
struct Best {
  float v;
  int64_t i;
};
__device__ __forceinline__ Best better(Best a, Best b) {
  const bool an = isnan(a.v), bn = isnan(b.v);
  if (an || bn) {
    if (an && bn) return a.i <= b.i ? a : b;
    return an ? a : b;
  }
  if (a.v != b.v) return a.v > b.v ? a : b;
  return a.i <= b.i ? a : b;
}
// inner == 1: one block per row, thread-strided scan then a fixed tree.
__global__ void rowmax_kernel(const float* x, float* y, int64_t* argmax, int64_t n) {
  __shared__ float sv[32];
  __shared__ int64_t si[32];
  const float* p = x + blockIdx.x * n;
  Best b{-INFINITY, 0};
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) b = better(b, Best{p[i], i});
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    Best u{__shfl_xor_sync(0xffffffffu, b.v, o), __shfl_xor_sync(0xffffffffu, b.i, o)};
    b = better(b, u);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane == 0) {
    sv[warp] = b.v;
    si[warp] = b.i;
  }
  __syncthreads();
  if (warp == 0) {
    Best t = lane < int(blockDim.x >> 5) ? Best{sv[lane], si[lane]} : Best{-INFINITY, 0};
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      Best u{__shfl_xor_sync(0xffffffffu, t.v, o), __shfl_xor_sync(0xffffffffu, t.i, o)};
      t = better(t, u);
    }
    if (lane == 0) {
      y[blockIdx.x] = t.v;
      argmax[blockIdx.x] = t.i;
    }
  }
}
// inner > 1: one thread per output scanning the axis in order (coalesced across j).
__global__ void colmax_kernel(const float* x, float* y, int64_t* argmax, int64_t outer, int64_t n, int64_t inner) {
  const int64_t k = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (k >= outer * inner) return;
  const int64_t o = k / inner, j = k % inner;
  const float* p = x + o * n * inner + j;
  float best = -INFINITY;
  int64_t bi = 0;
  for (int64_t i = 0; i < n; ++i) {
    const float v = p[i * inner];
    if (isnan(v)) {
      best = v;
      bi = i;
      break;
    }
    if (v > best) {
      best = v;
      bi = i;
    }
  }
  y[k] = best;
  argmax[k] = bi;
}

__global__ void clip_factor_kernel(const double* sum_sq, int count, float max_norm, float* out) {
  double total = 0.0;
  for (int i = 0; i < count; ++i) total += sum_sq[i];
  const float norm = float(sqrt(total));
  const float f = max_norm / (norm + 1e-6f);
  *out = f < 1.f ? f : 1.f;
}

}  // namespace


void sum_all(const float* x, int64_t n, float* out, double* out_f64, void* stream) {
  sum_all_impl<false>(x, n, out, out_f64, as_stream(stream));
}
void sum_squares(const float* x, int64_t n, float* out, double* out_f64, void* stream) {
  sum_all_impl<true>(x, n, out, out_f64, as_stream(stream));
}

void reduce_sum(const float* x, float* y, int64_t outer, int64_t n, int64_t inner, void* stream) {
  const cudaStream_t s = as_stream(stream);
  if (outer == 0 || inner == 0) return;
  if (inner == 1 && n > 0) {
    if (outer > 0x7fffffff) throw std::invalid_argument("cuda::reduce_sum: too many rows");
    rowsum_kernel<<<unsigned(outer), launch::row_threads(n), 0, s>>>(x, y, n);
    check_launch("cuda::reduce_sum");
    return;
  }
  colsum(x, y, outer, n, inner, s);
}

void reduce_max(const float* x, float* y, int64_t* argmax, int64_t outer, int64_t n, int64_t inner,
                void* stream) {
  const cudaStream_t s = as_stream(stream);
  if (outer == 0 || inner == 0) return;
  if (inner == 1 && n > 0)
    rowmax_kernel<<<unsigned(outer), launch::row_threads(n), 0, s>>>(x, y, argmax, n);
  else
    colmax_kernel<<<unsigned(launch::ceil_div(outer * inner, 256)), 256, 0, s>>>(x, y, argmax, outer, n, inner);
  check_launch("cuda::reduce_max");
}

void sum_rows(const float* gy, float* gb, int64_t rows, int64_t n, void* stream) {
  colsum(gy, gb, 1, rows, n, as_stream(stream));
}
void sum_rows_bf16(const uint16_t* gy, float* gb, int64_t rows, int64_t n, void* stream) {
  colsum(gy, gb, 1, rows, n, as_stream(stream));
}

void clip_factor(const double* sum_sq, int count, float max_norm, float* out, void* stream) {
  clip_factor_kernel<<<1, 1, 0, as_stream(stream)>>>(sum_sq, count, max_norm, out);
  check_launch("cuda::clip_factor");
}

}  // namespace scion::cuda
