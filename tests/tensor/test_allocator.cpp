// The caching allocator reaches a steady state: a repeated training step asks the system
// for no new memory.
#include <gtest/gtest.h>

#include "scion/allocator.h"
#include "scion/nn.h"
#include "scion/ops.h"

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
