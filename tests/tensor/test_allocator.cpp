// The caching allocator reaches a steady state: a repeated training step asks the system
// for no new memory.
#include <gtest/gtest.h>

#include "scion/allocator.h"
#include "scion/nn.h"
#include "scion/ops.h"
#include "scion/sizes.h"

using namespace scion;

TEST(Allocator, ReusesFreedBlocks) {
  Allocator& a = allocator_for(Device::cpu());
  { Tensor t = Tensor::empty({1000}); }
  const int64_t fresh = a.stats().fresh_allocations;
  for (int i = 0; i < 10; ++i) Tensor t = Tensor::empty({1000});
  EXPECT_EQ(a.stats().fresh_allocations, fresh);
}

TEST(Allocator, StatisticsTrackUseAndPeak) {
  Allocator& a = allocator_for(Device::cpu());
  const int64_t before = a.stats().bytes_in_use;
  a.reset_peak();
  {
    Tensor t = Tensor::empty({1 << 16});
    EXPECT_GE(a.stats().bytes_in_use - before, int64_t(4) << 16);
  }
  EXPECT_EQ(a.stats().bytes_in_use, before);
  EXPECT_GE(a.stats().peak_bytes_in_use - before, int64_t(4) << 16);
}

TEST(Allocator, TrainingStepInSteadyStateAllocatesNothingNew) {
  nn::BlockConfig cfg;
  cfg.width = 32;
  cfg.heads = 4;
  cfg.ffn = 128;
  nn::TransformerBlock block(cfg);
  nn::Embedding emb(50, 32, {7, 0.02f});
  nn::Norm ln_f(32);
  std::vector<Tensor> params = block.parameters();
  for (auto& p : emb.parameters()) params.push_back(p);
  for (auto& p : ln_f.parameters()) params.push_back(p);
  std::vector<Tensor> m, v;
  for (auto& p : params) {
    m.push_back(Tensor::zeros(p.shape()));
    v.push_back(Tensor::zeros(p.shape()));
  }
  Tensor ids = Tensor::randint({2, 9}, 1, 0, 50);
  Tensor targets = Tensor::randint({2, 9}, 2, 0, 50);
  auto step = [&](int64_t k) {
    for (auto& p : params) p.zero_grad();
    Tensor h = ln_f.forward(block.forward(emb.forward(ids)));
    Tensor logits = ops::matmul(h, emb.weight, false, true);
    Tensor loss = ops::cross_entropy(logits, targets);
    loss.backward();
    ops::clip_grad_norm([&] {
      std::vector<Tensor> g;
      for (auto& p : params) g.push_back(p.grad());
      return g;
    }(), 1.0f);
    for (size_t i = 0; i < params.size(); ++i) ops::adamw_step(params[i], params[i].grad(), m[i], v[i], k, {});
    return loss.item();
  };
  const float first = step(1);
  step(2);
  Allocator& a = allocator_for(Device::cpu());
  const int64_t fresh = a.stats().fresh_allocations;
  float last = 0;
  for (int k = 3; k < 8; ++k) last = step(k);
  EXPECT_EQ(a.stats().fresh_allocations, fresh) << "steady-state steps asked the system for memory";
  EXPECT_LT(last, first);  // and it does train
}

// Issue 35, item 5: absurd sizes are an Error naming what overflowed, never a wrapped product
// (a small block written past), an abort, or a size class that loops forever.
TEST(Sizes, CheckedArithmeticRefusesOverflowAndNegativeSizes) {
  EXPECT_EQ(checked_mul(int64_t(1) << 31, int64_t(1) << 31, "x"), int64_t(1) << 62);
  EXPECT_EQ(checked_add(int64_t(1) << 62, (int64_t(1) << 62) - 1, "x"), INT64_MAX);
  EXPECT_EQ(checked_product({}, "x"), 1);
  EXPECT_EQ(checked_product({3, 0, int64_t(1) << 62}, "x"), 0);
  try {
    checked_mul(int64_t(1) << 32, int64_t(1) << 31, "the rows");
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("the rows: 4294967296 × 2147483648 does not fit in 64 bits"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(checked_add(INT64_MAX, 1, "x"), Error);
  EXPECT_THROW(checked_mul(-1, 2, "x"), Error);
  EXPECT_THROW(checked_product({int64_t(1) << 40, int64_t(1) << 40}, "x"), Error);
}

TEST(Sizes, ATensorWhoseSizeOverflowsIsAnErrorNotASmallBlock) {
  // 2^61 × 16 elements wraps to 0 in 64 bits; 2^61 floats are 2^63 bytes.
  EXPECT_THROW(Tensor::empty({int64_t(1) << 61, 16}), Error);
  EXPECT_THROW(Tensor::empty({int64_t(1) << 61}), Error);
  EXPECT_THROW(Tensor::zeros({int64_t(1) << 40, int64_t(1) << 30}), Error);
}

TEST(Sizes, TheAllocatorRefusesBlocksNoDeviceHolds) {
  Allocator& a = allocator_for(Device::cpu());
  for (size_t bytes : {kMaxBlockBytes + 1, (size_t(1) << 63) + 1, SIZE_MAX}) {
    try {
      a.allocate(bytes);
      FAIL() << "no error for " << bytes;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("allocator: a block of " + std::to_string(bytes) + " bytes"),
                std::string::npos)
          << e.what();
    }
  }
}
