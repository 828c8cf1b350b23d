// Host-side tests of the CUDA launch arithmetic (kernels/cuda/launch.h): the partitions that make
// the GPU reductions deterministic and the tile ranges that the attention kernels visit. They run
// without a GPU; the kernels themselves are tested against the CPU on a GPU machine.
#include <gtest/gtest.h>

#include <set>

#include "cuda/launch.h"

namespace scion::cuda::launch {
namespace {

TEST(CudaLaunch, ElementwiseBlocksCoverAndCap) {
  EXPECT_EQ(elementwise_blocks(0), 1);
  EXPECT_EQ(elementwise_blocks(1), 1);
  EXPECT_EQ(elementwise_blocks(kElementwiseThreads), 1);
  EXPECT_EQ(elementwise_blocks(kElementwiseThreads + 1), 2);
  EXPECT_EQ(elementwise_blocks(int64_t(1) << 40), kMaxElementwiseBlocks);
  EXPECT_EQ(elementwise_blocks(4 * kElementwiseThreads, 4), 1);
}

TEST(CudaLaunch, SumPartitionCoversEveryElementOnceWithNoEmptyBlock) {
  for (int64_t n : {int64_t(0), int64_t(1), int64_t(7), kSumChunk - 1, kSumChunk, kSumChunk + 1,
                    int64_t(1000003), kSumChunk * kMaxSumBlocks, kSumChunk * kMaxSumBlocks + 5,
                    int64_t(124000000)}) {
    const SumPartition p = sum_partition(n);
    ASSERT_GE(p.blocks, 1) << n;
    ASSERT_LE(p.blocks, kMaxSumBlocks) << n;
    EXPECT_GE(p.blocks * p.per_block, n) << n;
    if (n > 0) {
      EXPECT_LT((p.blocks - 1) * p.per_block, n) << "last block empty for n=" << n;
    }
  }
}

TEST(CudaLaunch, RowChunks) {
  EXPECT_EQ(row_chunks(0), 1);
  EXPECT_EQ(row_chunks(1), 1);
  EXPECT_EQ(row_chunks(kRowChunk), 1);
  EXPECT_EQ(row_chunks(kRowChunk + 1), 2);
  EXPECT_EQ(row_chunks(8192), 8192 / kRowChunk);
}

TEST(CudaLaunch, RowThreadsFitRows) {
  for (int64_t n : {1, 31, 32, 256, 257, 768, 1024, 4096, 50304, 1 << 22}) {
    const int t = row_threads(n);
    EXPECT_EQ(t % 32, 0) << n;
    EXPECT_LE(t, 1024) << n;
    EXPECT_TRUE(t == 1024 || int64_t(t) * 8 >= n) << n;  // at most 8 elements a thread below the cap
    EXPECT_TRUE(t == 32 || int64_t(t / 2) * 8 < n) << n;  // and no larger than needed
  }
}

TEST(CudaLaunch, AttentionHeadSizes) {
  for (int64_t D = 1; D <= 128; ++D) {
    const int dm = attention_dmax(D);
    ASSERT_GE(dm, D);
    EXPECT_EQ(dm % kAttnLanes, 0);
    EXPECT_TRUE(dm == 32 || attention_dmax(dm / 2) < D || dm / 2 < D);
  }
  EXPECT_EQ(attention_dmax(129), 0);
  // The kernels use static shared memory, which is limited to 48 KB per block; two tiles plus
  // the per-row scalars must fit.
  EXPECT_LE(attention_smem_bytes(128) + 2 * kAttnRows * int64_t(sizeof(float)), 48 * 1024);
}

// Brute force: under the causal mask query i sees key j iff j <= i.
TEST(CudaLaunch, CausalKeyTilesAreExactlyTheVisibleOnes) {
  for (int64_t T : {1, 5, 31, 32, 33, 64, 100, 1024}) {
    const int64_t q_tiles = ceil_div(T, kAttnRows), k_tiles = ceil_div(T, kAttnKeys);
    for (int64_t qt = 0; qt < q_tiles; ++qt) {
      int64_t needed = 0;
      for (int64_t kt = 0; kt < k_tiles; ++kt)
        for (int64_t i = qt * kAttnRows; i < std::min(T, (qt + 1) * kAttnRows); ++i)
          if (kt * kAttnKeys <= i) needed = kt + 1;
      EXPECT_EQ(causal_key_tiles(qt, T), needed) << "T=" << T << " qt=" << qt;
    }
    for (int64_t kt = 0; kt < k_tiles; ++kt) {
      int64_t first = q_tiles;
      for (int64_t qt = q_tiles - 1; qt >= 0; --qt)
        for (int64_t i = qt * kAttnRows; i < std::min(T, (qt + 1) * kAttnRows); ++i)
          if (i >= kt * kAttnKeys) first = qt;
      EXPECT_EQ(causal_first_query_tile(kt), first) << "T=" << T << " kt=" << kt;
    }
  }
}

TEST(CudaLaunch, AdamLaunchesMapEveryChunkToItsTensor) {
  const std::vector<int64_t> sizes = {10, 0, kAdamChunk, kAdamChunk + 1, 3 * kAdamChunk, 1, 0, 0, 50000};
  for (int per : {1, 2, 3, 24}) {
    std::vector<int64_t> start;
    const std::vector<int> first = adam_launches(sizes, per, start);
    ASSERT_EQ(first.front(), 0);
    ASSERT_EQ(first.back(), int(sizes.size()));
    std::set<std::pair<size_t, int64_t>> seen;  // (tensor, chunk)
    for (size_t l = 0; l + 1 < first.size(); ++l) {
      const int count = first[l + 1] - first[l];
      ASSERT_GE(count, 1);
      ASSERT_LE(count, per);
      std::vector<int64_t> bs(size_t(count) + 1);
      for (int j = 0; j < count; ++j) bs[size_t(j)] = start[size_t(first[l] + j)];
      const size_t last = size_t(first[l + 1] - 1);
      bs[size_t(count)] = start[last] + ceil_div(sizes[last], kAdamChunk);
      EXPECT_EQ(bs[0], 0);
      for (int64_t b = 0; b < bs[size_t(count)]; ++b) {
        const int t = adam_tensor_of_block(bs.data(), count, b);
        const size_t tensor = size_t(first[l] + t);
        const int64_t chunk = b - bs[size_t(t)];
        ASSERT_LT(chunk * kAdamChunk, sizes[tensor]) << "block past its tensor's end";
        EXPECT_TRUE(seen.insert({tensor, chunk}).second) << "chunk visited twice";
      }
    }
    int64_t total = 0;
    for (int64_t n : sizes) total += ceil_div(n, kAdamChunk);
    EXPECT_EQ(int64_t(seen.size()), total) << "per=" << per;
  }
}

}  // namespace
}  // namespace scion::cuda::launch
