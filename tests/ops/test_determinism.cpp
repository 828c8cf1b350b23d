// Same bits with 1 and 2 threads: each op runs on inputs large enough to take its parallel
// path (and BLAS's threaded path), once with set_num_threads(1) and once with 2, and the
// outputs and gradients are compared with memcmp.
#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <utility>

#include "ops/test_util.h"
#include "scion/threads.h"

using namespace scion;
using namespace scion::test;

namespace {

using Results = std::vector<std::pair<std::string, Tensor>>;

Tensor leaf(Tensor t) {
  t.set_requires_grad(true);
  return t;
}

// Runs every op under test and returns (name, tensor) for each output and gradient.
Results run_ops() {
  Results r;
  auto add = [&](const std::string& n, const Tensor& t) { r.emplace_back(n, t.detach().contiguous()); };

  // random generation
  add("randn", Tensor::randn({1 << 20}, 7));
  add("rand", Tensor::rand({300001}, 8, -2.f, 3.f));
  add("randint", Tensor::randint({300001}, 9, 0, 50257));
  add("dropout", ops::dropout(Tensor::ones({300001}), 0.1f, 10));

  // matmul: one big GEMM, batched (BLAS-threaded items), batched small (one task per item),
  // shared 2-D operand, all with gradients
  {
    Tensor a = leaf(randn({384, 256}, 11)), b = leaf(randn({256, 320}, 12));
    Tensor c = ops::matmul(a, b);
    add("matmul", c);
    c.backward(randn(c.shape(), 13));
    add("matmul.da", a.grad());
    add("matmul.db", b.grad());
    Tensor ab = leaf(randn({4, 160, 144}, 14)), bb = leaf(randn({4, 160, 128}, 15));
    Tensor cb = ops::matmul(ab, bb, true, false);
    add("matmul_batched", cb);
    cb.backward(randn(cb.shape(), 16));
    add("matmul_batched.da", ab.grad());
    add("matmul_batched.db", bb.grad());
    Tensor as = leaf(randn({64, 17, 33}, 17)), bs = leaf(randn({65, 33}, 18));
    Tensor cs = ops::matmul(as, bs, false, true);
    add("matmul_shared", cs);
    cs.backward(randn(cs.shape(), 19));
    add("matmul_shared.da", as.grad());
    add("matmul_shared.db", bs.grad());
  }
  // linear forward and backward, both layouts
  for (bool in_out : {false, true}) {
    const std::string n = in_out ? "linear_io" : "linear_oi";
    Tensor x = leaf(randn({4, 128, 256}, 21));
    Tensor w = leaf(randn(in_out ? Shape{256, 384} : Shape{384, 256}, 22, 0.05f)), b = leaf(randn({384}, 23));
    Tensor y = ops::linear(x, w, b, in_out);
    add(n, y);
    y.backward(randn(y.shape(), 24));
    add(n + ".dx", x.grad());
    add(n + ".dw", w.grad());
    add(n + ".db", b.grad());
  }
  // layernorm forward and backward
  {
    Tensor x = leaf(randn({512, 768}, 31)), w = leaf(randn({768}, 32)), b = leaf(randn({768}, 33));
    Tensor y = ops::layernorm(x, w, b);
    add("layernorm", y);
    y.backward(randn(y.shape(), 34));
    add("layernorm.dx", x.grad());
    add("layernorm.dw", w.grad());
    add("layernorm.db", b.grad());
  }
  // embedding backward with many repeated ids
  {
    Tensor w = leaf(randn({50, 256}, 41));
    Tensor id = Tensor::randint({8, 512}, 42, 0, 50);
    Tensor y = ops::embedding(w, id);
    add("embedding", y);
    y.backward(randn(y.shape(), 43));
    add("embedding.dw", w.grad());
  }
  // attention forward and backward from a fused qkv tensor, causal and padded
  for (bool causal : {true, false}) {
    const std::string n = causal ? "attention_causal" : "attention_padded";
    // T = 160 makes the per-head GEMMs large enough to be split into blocks inside the tasks
    const int64_t B = 4, T = causal ? 96 : 160, C = 128, H = 4;
    Tensor qkv = leaf(randn({B, T, 3 * C}, 51));
    Tensor mask = causal ? Tensor() : mask_u8({B, T}, [&](int64_t i) { return i % T < T - 7 * (i / T); });
    Tensor y = ops::attention(qkv.narrow(2, 0, C), qkv.narrow(2, C, C), qkv.narrow(2, 2 * C, C), H, causal, mask);
    add(n, y);
    y.backward(randn(y.shape(), 52));
    add(n + ".dqkv", qkv.grad());
  }
  // losses
  {
    Tensor logits = leaf(randn({512, 1000}, 61, 2.f));
    Tensor t = Tensor::randint({512}, 62, 0, 1000);
    t.data<int64_t>()[5] = -100;
    Tensor l = ops::cross_entropy(logits, t);
    add("cross_entropy", l);
    l.backward();
    add("cross_entropy.dlogits", logits.grad());
    Tensor x = leaf(randn({256, 1000}, 63)), tl = leaf(randn({256, 1000}, 64));
    Tensor kl = ops::kl_div(x, tl, 2.f, mask_u8({256}, [](int64_t i) { return i % 5 != 0; }));
    add("kl_div", kl);
    kl.backward();
    add("kl_div.dx", x.grad());
    add("kl_div.dt", tl.grad());
  }
  // softmax and elementwise with gradients
  {
    Tensor a = leaf(randn({256, 1000}, 71));
    Tensor y = ops::mul(ops::gelu(ops::softmax(a, 0)), ops::log_softmax(a));
    add("softmax_gelu", y);
    y.backward(randn(y.shape(), 72));
    add("softmax_gelu.da", a.grad());
  }
  // reductions over big tensors
  {
    Tensor big = randn({1000, 1200}, 81);
    add("sum_all", ops::sum_all(big));
    add("mean_all", ops::mean_all(big));
    add("sum_axis0", ops::sum(big, {0}));
    add("sum_axis1", ops::sum(big, {1}));
    add("sum_axis01", ops::sum(big, {0, 1}));
    add("mean_axis0", ops::mean(big.reshape({10, 100, 1200}), {0, 2}, true));
    add("sum_transposed", ops::sum(big.transpose(0, 1), {1}));
    add("max_axis0", ops::max(big, 0));
    add("sum_to", ops::sum_to(big.reshape({20, 50, 1200}), {50, 1}));
    add("global_norm", Tensor::scalar(ops::global_norm({big, randn({3000001}, 82)})));
    Tensor x = leaf(randn({1000, 1200}, 83));
    Tensor s = ops::sum(ops::mul(x, x), {1});
    s.backward(randn(s.shape(), 84));
    add("sum.dx", x.grad());
  }
  // optimizer step
  {
    Tensor p = randn({300001}, 91), g = randn({300001}, 92), m = Tensor::zeros({300001}), v = Tensor::zeros({300001});
    ops::AdamWConfig cfg;
    cfg.weight_decay = 0.1f;
    for (int64_t step = 1; step <= 3; ++step) ops::adamw_step(p, g, m, v, step, cfg);
    add("adamw.p", p);
    std::vector<Tensor> gs{g.clone(), randn({1000}, 93)};
    ops::clip_grad_norm(gs, 0.5f);
    add("clip.g0", gs[0]);
  }
  // conversions
  add("to_bf16", randn({300001}, 101).to(DType::bf16));
  add("to_f16", randn({300001}, 102).to(DType::f16).to(DType::f32));
  return r;
}

class Determinism : public ::testing::Test {
 protected:
  void TearDown() override { set_num_threads(0); }
};

}  // namespace

TEST_F(Determinism, OneAndTwoThreadsGiveTheSameBits) {
  set_num_threads(1);
  ASSERT_EQ(num_threads(), 1);
  const Results one = run_ops();
  set_num_threads(2);
  ASSERT_EQ(num_threads(), 2);
  const Results two = run_ops();
  const Results two_again = run_ops();
  ASSERT_EQ(one.size(), two.size());
  for (size_t i = 0; i < one.size(); ++i) {
    const Tensor& a = one[i].second;
    const Tensor& b = two[i].second;
    ASSERT_TRUE(a.defined() && b.defined()) << one[i].first;
    ASSERT_EQ(a.shape(), b.shape()) << one[i].first;
    EXPECT_EQ(std::memcmp(a.raw_data(), b.raw_data(), a.nbytes()), 0) << one[i].first << " differs between 1 and 2 threads";
    EXPECT_EQ(std::memcmp(b.raw_data(), two_again[i].second.raw_data(), b.nbytes()), 0)
        << one[i].first << " differs between two runs with 2 threads";
  }
}

// The counter-based streams: element i depends only on (seed, i), so a prefix of a larger
// tensor is the smaller tensor, whatever the thread count.
TEST_F(Determinism, RandomStreamsArePrefixStable) {
  set_num_threads(2);
  Tensor big = Tensor::randn({100000}, 5), small = Tensor::randn({777}, 5);
  EXPECT_TRUE(same_bits(big.narrow(0, 0, 777), small));
  EXPECT_FALSE(same_bits(Tensor::randn({777}, 6), small));
  Tensor r = Tensor::randint({100000}, 5, 3, 9);
  for (int64_t v : r.to_vector_i64()) {
    ASSERT_GE(v, 3);
    ASSERT_LT(v, 9);
  }
  // moments of randn are sane
  double s = 0, s2 = 0;
  for (float v : big.to_vector()) s += v, s2 += double(v) * v;
  EXPECT_NEAR(s / 1e5, 0.0, 0.02);
  EXPECT_NEAR(s2 / 1e5, 1.0, 0.03);
}
