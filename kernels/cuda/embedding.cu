// Embedding lookup and its deterministic scatter-add backward.
//
// Backward: positions are sorted by id with a stable radix sort (CUB), so each id's positions
// form one run in ascending position order; the block that owns a run's first position adds the
// run's rows into the table row, starting from the table's current value and adding rows in
// position order: exactly the CPU's summation order, so the two agree bit for bit, and no two
// blocks touch the same table row (no atomics). Sorting instead of the CPU's column-parallel scan
// keeps the GPU busy: the column scan would leave only `dim` threads for the whole batch.
#include <cub/device/device_radix_sort.cuh>

#include "cuda/common.cuh"

namespace scion::cuda {
namespace {
using namespace detail;

// Rows with a bad id are written as zeros, so nothing reads out of bounds.
template <class T>
__global__ void embedding_forward_kernel(const float* table, int64_t vocab, int64_t dim, const int64_t* ids,
                                         T* y) {
  const int64_t i = blockIdx.x;
  const int64_t id = ids[i];
  const bool ok = id >= 0 && id < vocab;
  const float* src = table + (ok ? id : 0) * dim;
  T* dst = y + i * dim;
  for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) st(dst, c, ok ? src[c] : 0.f);
}
// The first bad position, by one block with a fixed min tree (integers: exact anyway).
__global__ void first_bad_kernel(const int64_t* ids, int64_t n, int64_t vocab, int64_t* bad) {
  __shared__ long long sh[32];
  long long b = LLONG_MAX;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    if ((ids[i] < 0 || ids[i] >= vocab) && i < b) b = i;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const long long u = __shfl_xor_sync(0xffffffffu, b, o);
    b = u < b ? u : b;
  }
  if ((threadIdx.x & 31) == 0) sh[threadIdx.x >> 5] = b;
  __syncthreads();
  if (threadIdx.x == 0) {
    long long m = LLONG_MAX;
    for (int w = 0; w < int(blockDim.x >> 5); ++w) m = sh[w] < m ? sh[w] : m;
    *bad = m == LLONG_MAX ? -1 : m;
  }
}

__global__ void sort_inputs_kernel(const int64_t* ids, int32_t* keys, int32_t* pos, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    keys[i] = int32_t(ids[i]);
    pos[i] = int32_t(i);
  }
}

// One block per sorted slot; only the first slot of each run does work. Columns are spread over
// the block's threads (coalesced row reads); rows are added in position order.
template <class T>
__global__ void scatter_runs_kernel(const T* gy, const int32_t* keys, const int32_t* pos, int64_t n, int64_t dim,
                                    float* g_table) {
  const int64_t i = blockIdx.x;
  const int32_t key = keys[i];
  if (i > 0 && keys[i - 1] == key) return;
  int64_t end = i + 1;
  while (end < n && keys[end] == key) ++end;
  float* dst = g_table + int64_t(key) * dim;
  for (int64_t c = threadIdx.x; c < dim; c += blockDim.x) {
    float acc = dst[c];
    for (int64_t j = i; j < end; ++j) acc += ld(gy, int64_t(pos[j]) * dim + c);
    dst[c] = acc;
  }
}

int bits_for(int64_t vocab) {
  int b = 1;
  while (b < 31 && (int64_t(1) << b) < vocab) ++b;
  return b;
}

unsigned dim_threads(int64_t dim) {
  return dim >= 512 ? 256u : (dim >= 128 ? 128u : 64u);
}

template <class T>
void embedding_forward_any(const float* table, int64_t vocab, int64_t dim, const int64_t* ids, int64_t n, T* y,
                           int64_t* bad, cudaStream_t s) {
  first_bad_kernel<<<1, 1024, 0, s>>>(ids, n, vocab, bad);
  if (n > 0 && dim > 0) {
    if (n > 0x7fffffff) throw std::invalid_argument("cuda::embedding_forward: too many positions");
    embedding_forward_kernel<<<unsigned(n), dim_threads(dim), 0, s>>>(table, vocab, dim, ids, y);
  }
  check_launch("cuda::embedding_forward");
}

template <class T>
void embedding_backward_any(const T* gy, const int64_t* ids, int64_t n, int64_t dim, float* g_table,
                            int64_t vocab, cudaStream_t s) {
  if (n == 0 || dim == 0) return;
  if (n > 0x7fffffff || vocab > 0x7fffffff)
    throw std::invalid_argument("cuda::embedding_backward: more than 2^31 positions or ids");
  // keys_in, pos_in, keys_out, pos_out, then CUB's temporary storage.
  size_t temp_bytes = 0;
  check(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, static_cast<const int32_t*>(nullptr),
                                        static_cast<int32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                        static_cast<int32_t*>(nullptr), n, 0, bits_for(vocab), s),
        "cub::DeviceRadixSort (size)");
  const size_t arrays = 4 * size_t(n) * sizeof(int32_t);
  Scratch scratch(arrays + temp_bytes, s);
  int32_t* keys_in = scratch.as<int32_t>();
  int32_t* pos_in = keys_in + n;
  int32_t* keys_out = pos_in + n;
  int32_t* pos_out = keys_out + n;
  void* temp = reinterpret_cast<char*>(scratch.as<char>()) + arrays;
  sort_inputs_kernel<<<grid1d(n), launch::kElementwiseThreads, 0, s>>>(ids, keys_in, pos_in, n);
  check(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, keys_in, keys_out, pos_in, pos_out, n, 0,
                                        bits_for(vocab), s),
        "cub::DeviceRadixSort");
  scatter_runs_kernel<<<unsigned(n), dim_threads(dim), 0, s>>>(gy, keys_out, pos_out, n, dim, g_table);
  check_launch("cuda::embedding_backward");
}

}  // namespace

void embedding_forward(const float* table, int64_t vocab, int64_t dim, const int64_t* ids, int64_t n, float* y,
                       int64_t* bad, void* stream) {
  embedding_forward_any(table, vocab, dim, ids, n, y, bad, as_stream(stream));
}
void embedding_forward_bf16(const float* table, int64_t vocab, int64_t dim, const int64_t* ids, int64_t n,
                            uint16_t* y, int64_t* bad, void* stream) {
  embedding_forward_any(table, vocab, dim, ids, n, y, bad, as_stream(stream));
}
void embedding_backward(const float* gy, const int64_t* ids, int64_t n, int64_t dim, float* g_table,
                        int64_t vocab, void* stream) {
  embedding_backward_any(gy, ids, n, dim, g_table, vocab, as_stream(stream));
}
void embedding_backward_bf16(const uint16_t* gy, const int64_t* ids, int64_t n, int64_t dim, float* g_table,
                             int64_t vocab, void* stream) {
  embedding_backward_any(gy, ids, n, dim, g_table, vocab, as_stream(stream));
}

}  // namespace scion::cuda
