// Launch-configuration arithmetic shared by the CUDA kernels. Plain host C++ (no CUDA headers)
// so that it is unit-tested on machines without a GPU (kernels/cuda/tests/launch_test.cpp).
//
// Everything that decides HOW a reduction is partitioned lives here and depends only on the
// problem size, never on the device (SM count, occupancy): that is what makes the float sums
// bit-identical from run to run and from one GPU of a model to another.
#pragma once
#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <vector>

namespace scion::cuda::launch {

constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Grid for a grid-stride elementwise loop: enough blocks to cover n, capped (a grid-stride loop
// does the rest; the cap keeps launches cheap for huge n). Never 0 blocks, so a launch for
// n == 0 is still well formed (callers skip it anyway).
constexpr int64_t kElementwiseThreads = 256;
constexpr int64_t kMaxElementwiseBlocks = 65536;
constexpr int64_t elementwise_blocks(int64_t n, int64_t per_thread = 1) {
  const int64_t b = ceil_div(ceil_div(n, per_thread), kElementwiseThreads);
  return b < 1 ? 1 : (b > kMaxElementwiseBlocks ? kMaxElementwiseBlocks : b);
}

// Whole-tensor sums (sum_all, sum_squares): block i sums the fixed range
// [i*per_block, min(n, (i+1)*per_block)), then one block adds the partials in a fixed tree.
struct SumPartition {
  int64_t blocks;
  int64_t per_block;
};
constexpr int64_t kSumChunk = 16384;      // elements per block for moderate n
constexpr int64_t kMaxSumBlocks = 1024;   // the final block sums at most this many partials
constexpr SumPartition sum_partition(int64_t n) {
  int64_t blocks = ceil_div(n, kSumChunk);
  if (blocks < 1) blocks = 1;
  if (blocks > kMaxSumBlocks) blocks = kMaxSumBlocks;
  return {blocks, ceil_div(n, blocks)};
}

// Column sums over many rows (sum_rows, layernorm parameter gradients, reduce_sum with inner > 1):
// rows are split into fixed chunks of kRowChunk; stage 1 sums each chunk per column in row
// order, stage 2 adds the chunk sums per column in chunk order. One chunk: stage 1 writes the
// result directly.
constexpr int64_t kRowChunk = 128;
constexpr int64_t row_chunks(int64_t rows) {
  const int64_t c = ceil_div(rows, kRowChunk);
  return c < 1 ? 1 : c;
}

// Flash attention tiles. Forward and the dQ kernel: a block owns kAttnRows query rows, each row
// handled by kAttnLanes threads that split the head dimension; keys stream through shared
// memory kAttnKeys at a time. The dK/dV kernel swaps the roles of queries and keys.
constexpr int kAttnLanes = 4;
constexpr int kAttnRows = 32;
constexpr int kAttnKeys = 32;
constexpr int kAttnThreads = kAttnRows * kAttnLanes;  // 128
// The compiled head-dimension capacities; a D is served by the smallest one that holds it.
constexpr int attention_dmax(int64_t D) {
  return D <= 32 ? 32 : (D <= 64 ? 64 : (D <= 128 ? 128 : 0));
}
// Shared memory for two [kAttnKeys x dmax] f32 tiles, padded by one word per row: the padding
// spreads a column walk across banks.
constexpr int64_t attention_smem_bytes(int dmax) {
  return 2 * int64_t(kAttnKeys) * (dmax + 1) * int64_t(sizeof(float));
}
// Under the causal mask, the key tiles that query tile `qt` must visit: [0, last], where last is
// the key tile holding the tile's final query row.
constexpr int64_t causal_key_tiles(int64_t qt, int64_t T) {
  const int64_t last_row = std::min<int64_t>((qt + 1) * kAttnRows, T) - 1;
  return last_row / kAttnKeys + 1;
}
// ... and the first query tile that key tile `kt` is visible from (dK/dV kernel).
constexpr int64_t causal_first_query_tile(int64_t kt) {
  return (kt * kAttnKeys) / kAttnRows;
}

// Multi-tensor AdamW: tensors are cut into kAdamChunk-element chunks, one block per chunk; a
// launch takes up to `per_launch` tensors. Returns, per launch, the index of its first tensor
// (plus a final sentinel = count), and fills block_start with each tensor's first block within
// its own launch (prefix sums of chunk counts, restarting at every launch).
constexpr int64_t kAdamChunk = 4096;
inline std::vector<int> adam_launches(const std::vector<int64_t>& sizes, int per_launch,
                                      std::vector<int64_t>& block_start) {
  if (per_launch < 1) throw std::invalid_argument("adam_launches: per_launch < 1");
  std::vector<int> first;
  block_start.assign(sizes.size(), 0);
  int64_t blocks = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (i % size_t(per_launch) == 0) {
      first.push_back(int(i));
      blocks = 0;
    }
    block_start[i] = blocks;
    blocks += ceil_div(sizes[i], kAdamChunk);
  }
  first.push_back(int(sizes.size()));
  return first;
}
// Inside a launch: the tensor that block `block` works on, given the launch's block_start array
// (count entries plus the total as a sentinel). A linear scan: at most kAdamTensorsPerLaunch
// entries, and empty tensors (equal starts) are skipped. Used by the kernel itself (constexpr
// functions are callable from device code under --expt-relaxed-constexpr).
constexpr int adam_tensor_of_block(const int64_t* block_start, int count, int64_t block) {
  int t = 0;
  while (t + 1 < count && block >= block_start[t + 1]) ++t;
  return t;
}

// Rows handled per block for the row-wise kernels (softmax, layernorm, cross-entropy): one block
// per row with a thread count fitted to the row length (a multiple of 32, at most 1024), so short
// rows do not leave most of a block idle.
constexpr int row_threads(int64_t n) {
  int t = 32;
  while (t < 1024 && int64_t(t) * 8 < n) t *= 2;
  return t;
}

}  // namespace scion::cuda::launch
