// Finite-difference gradient checks for every differentiable op and view. Each check builds
// loss = sum(out * fixed random weights) in double, compares backward's gradients with central
// differences (eps 1e-2 on f32 inputs, up to 64 sampled elements per input, tolerance
// 2e-3 + 2e-2 * |g|, see GradcheckOptions). Inputs stay away from kinks and ties.
#include <gtest/gtest.h>

#include "ops/test_util.h"

using namespace scion;
using namespace scion::test;
using V = std::vector<Tensor>;

#define GRADCHECK(...) EXPECT_TRUE(gradcheck(__VA_ARGS__))

// The checker itself must notice a wrong backward: an op y = 2x whose recorded backward
// returns 3g, and one that forgets to route a gradient to its second input.
TEST(Gradcheck, DetectsWrongBackward) {
  auto twice = [](const Tensor& x, float claimed) {
    Tensor y = ops::mul_scalar(x.detach(), 2.f);
    if (autograd::needs_grad({&x}))
      autograd::record("twice", y, {x}, [claimed](const Tensor& g) { return V{ops::mul_scalar(g, claimed)}; });
    return y;
  };
  Tensor a = randn({4, 5}, 1);
  EXPECT_TRUE(gradcheck([&](const V& v) { return twice(v[0], 2.f); }, {a}));
  EXPECT_FALSE(gradcheck([&](const V& v) { return twice(v[0], 3.f); }, {a}));
  auto lossy_add = [](const Tensor& x, const Tensor& y) {
    Tensor out = ops::add(x.detach(), y.detach());
    if (autograd::needs_grad({&x, &y}))
      autograd::record("lossy_add", out, {x, y}, [](const Tensor& g) { return V{g, Tensor()}; });
    return out;
  };
  EXPECT_FALSE(gradcheck([&](const V& v) { return lossy_add(v[0], v[1]); }, {a, randn({4, 5}, 2)}));
}

// Gradients of leaves accumulate over backward passes (retain_graph) and over several uses.
TEST(Gradcheck, LeafGradientsAccumulate) {
  Tensor x = randn({3, 4}, 1);
  x.set_requires_grad(true);
  Tensor y = ops::sum_all(ops::mul(x, x));
  y.backward(Tensor(), /*retain_graph=*/true);
  const std::vector<float> g1 = x.grad().to_vector();
  y.backward();
  const std::vector<float> g2 = x.grad().to_vector(), xv = x.to_vector();
  for (size_t i = 0; i < g1.size(); ++i) {
    EXPECT_FLOAT_EQ(g1[i], 2 * xv[i]);
    EXPECT_FLOAT_EQ(g2[i], 4 * xv[i]);
  }
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
  // a tensor that does not require grad gets none
  Tensor c = randn({3, 4}, 2);
  Tensor z = ops::sum_all(ops::mul(x, c));
  z.backward();
  EXPECT_FALSE(c.grad().defined());
  EXPECT_TRUE(x.grad().defined());
}

// =============================== elementwise =====================================================

TEST(Gradcheck, BinaryBroadcast) {
  struct Case {
    Shape a, b;
  };
  for (const Case& c : {Case{{3, 5}, {3, 5}}, Case{{3, 4, 5}, {4, 1}}, Case{{3, 4, 5}, {}}, Case{{2, 1, 7}, {2, 3, 7}},
                        Case{{5, 1}, {1, 7}}, Case{{17}, {1}}}) {
    Tensor a = randn(c.a, 1), b = uniform(c.b, 2, 0.6f, 1.8f);
    GRADCHECK([](const V& x) { return ops::add(x[0], x[1]); }, {a, b});
    GRADCHECK([](const V& x) { return ops::sub(x[0], x[1]); }, {a, b});
    GRADCHECK([](const V& x) { return ops::mul(x[0], x[1]); }, {a, b});
    GRADCHECK([](const V& x) { return ops::div(x[0], x[1]); }, {a, b});
    GRADCHECK([](const V& x) { return ops::div(x[1], ops::add_scalar(ops::mul(x[0], x[0]), 1.f)); }, {a, b});
  }
}

TEST(Gradcheck, BinaryNonContiguousAndReuse) {
  Tensor a = randn({5, 7}, 3), b = randn({7, 5}, 4);
  GRADCHECK([](const V& x) { return ops::mul(x[0].transpose(0, 1), x[1]); }, {a, b});
  GRADCHECK([](const V& x) { return ops::sub(x[0].narrow(1, 2, 5), x[1].narrow(0, 1, 5)); }, {a, b});
  // the same tensor on both sides and used twice in the graph
  GRADCHECK([](const V& x) { return ops::add(ops::mul(x[0], x[0]), x[0]); }, {a});
}

TEST(Gradcheck, Unary) {
  Tensor x = randn({3, 17}, 5);
  Tensor pos = uniform({3, 17}, 6, 0.5f, 2.f);
  GRADCHECK([](const V& v) { return ops::add_scalar(v[0], 1.5f); }, {x});
  GRADCHECK([](const V& v) { return ops::mul_scalar(v[0], -2.5f); }, {x});
  GRADCHECK([](const V& v) { return ops::neg(v[0]); }, {x});
  GRADCHECK([](const V& v) { return ops::exp(v[0]); }, {x});
  GRADCHECK([](const V& v) { return ops::tanh(v[0]); }, {x});
  GRADCHECK([](const V& v) { return ops::gelu(v[0]); }, {ops::mul_scalar(x, 2.f).detach()});
  GRADCHECK([](const V& v) { return ops::silu(v[0]); }, {ops::mul_scalar(x, 3.f).detach()});
  GRADCHECK([](const V& v) { return ops::swiglu(v[0], v[1]); }, {ops::mul_scalar(x, 2.f).detach(), randn({3, 17}, 9)});
  GRADCHECK([](const V& v) { return ops::log(v[0]); }, {pos});
  GRADCHECK([](const V& v) { return ops::sqrt(v[0]); }, {pos});
  GRADCHECK([](const V& v) { return ops::rsqrt(v[0]); }, {pos});
  for (float p : {2.f, 3.f, 0.5f, -1.5f})
    GRADCHECK([p](const V& v) { return ops::pow_scalar(v[0], p); }, {pos});
  GRADCHECK([](const V& v) { return ops::relu(v[0]); }, {away_from_kinks({3, 17}, 7, -2.f, 2.f, {0.f}, 0.05f)});
  GRADCHECK([](const V& v) { return ops::clamp(v[0], -0.5f, 0.7f); },
            {away_from_kinks({5, 13}, 8, -2.f, 2.f, {-0.5f, 0.7f}, 0.05f)});
  // strided input
  GRADCHECK([](const V& v) { return ops::gelu(v[0].transpose(0, 1)); }, {x});
}

TEST(Gradcheck, Dropout) {
  Tensor x = randn({7, 33}, 9);
  GRADCHECK([](const V& v) { return ops::dropout(v[0], 0.3f, 1234); }, {x});
  GRADCHECK([](const V& v) { return ops::dropout(v[0].transpose(0, 1), 0.5f, 99); }, {x});
  GRADCHECK([](const V& v) { return ops::dropout(ops::mul_scalar(v[0], 2.f), 0.f, 1); }, {x});
}

// =============================== reductions ======================================================

TEST(Gradcheck, Reductions) {
  Tensor a = randn({3, 5, 7}, 10);
  for (std::vector<int64_t> axes : {std::vector<int64_t>{0}, {1}, {-1}, {0, 2}, {0, 1, 2}, {}})
    for (bool keep : {false, true}) {
      GRADCHECK([&](const V& v) { return ops::sum(v[0], axes, keep); }, {a});
      GRADCHECK([&](const V& v) { return ops::mean(v[0], axes, keep); }, {a});
    }
  GRADCHECK([](const V& v) { return ops::sum(v[0].transpose(0, 2), {1}, false); }, {a});
  GRADCHECK([](const V& v) { return ops::sum_all(v[0]); }, {a});
  GRADCHECK([](const V& v) { return ops::mean_all(v[0].narrow(1, 1, 3)); }, {a});
  for (Shape target : {Shape{5, 1}, Shape{1, 7}, Shape{}, Shape{3, 1, 1}, Shape{7}})
    GRADCHECK([&](const V& v) { return ops::sum_to(v[0], target); }, {a});
}

TEST(Gradcheck, Max) {
  // Distinct values spaced 0.1 apart (shuffled), so a perturbation of 1e-2 never changes the argmax.
  const int64_t n = 3 * 5 * 7;
  std::vector<float> vals(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) vals[size_t(i)] = 0.1f * float((i * 37) % n) - 5.f;
  Tensor a = Tensor::from_vector(vals, {3, 5, 7});
  for (int64_t axis : {0, 1, 2, -1})
    for (bool keep : {false, true}) GRADCHECK([&](const V& v) { return ops::max(v[0], axis, keep); }, {a});
}

// =============================== matmul and linear ===============================================

TEST(Gradcheck, MatmulAllTransposes) {
  const int64_t M = 5, K = 7, N = 3;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "ta=" << ta << " tb=" << tb);
      Tensor A = randn(ta ? Shape{K, M} : Shape{M, K}, 11), B = randn(tb ? Shape{N, K} : Shape{K, N}, 12);
      GRADCHECK([&](const V& v) { return ops::matmul(v[0], v[1], ta, tb); }, {A, B});
      // batched, both operands batched
      Tensor Ab = randn(ta ? Shape{2, K, M} : Shape{2, M, K}, 13), Bb = randn(tb ? Shape{2, N, K} : Shape{2, K, N}, 14);
      GRADCHECK([&](const V& v) { return ops::matmul(v[0], v[1], ta, tb); }, {Ab, Bb});
      // batched left operand, shared 2-D right operand (gradient sums over the batch)
      Tensor A4 = randn(ta ? Shape{2, 3, K, M} : Shape{2, 3, M, K}, 15);
      GRADCHECK([&](const V& v) { return ops::matmul(v[0], v[1], ta, tb); }, {A4, B});
      // shared 2-D left operand, batched right operand
      GRADCHECK([&](const V& v) { return ops::matmul(v[0], v[1], ta, tb); }, {A, Bb});
    }
  // strided operands
  Tensor A = randn({7, 5}, 16), B = randn({3, 7}, 17);
  GRADCHECK([](const V& v) { return ops::matmul(v[0].transpose(0, 1), v[1].transpose(0, 1)); }, {A, B});
}

TEST(Gradcheck, Linear) {
  const int64_t in = 7, out = 5;
  Tensor x = randn({2, 3, in}, 21), w_oi = randn({out, in}, 22), w_io = randn({in, out}, 23), b = randn({out}, 24);
  GRADCHECK([](const V& v) { return ops::linear(v[0], v[1], v[2], false); }, {x, w_oi, b});
  GRADCHECK([](const V& v) { return ops::linear(v[0], v[1], v[2], true); }, {x, w_io, b});
  GRADCHECK([](const V& v) { return ops::linear(v[0], v[1], Tensor(), false); }, {x, w_oi});
  GRADCHECK([](const V& v) { return ops::linear(v[0], v[1], Tensor(), true); }, {x, w_io});
  // 1-D input and strided input / weight
  GRADCHECK([](const V& v) { return ops::linear(v[0], v[1], v[2], true); }, {randn({in}, 25), w_io, b});
  GRADCHECK([](const V& v) { return ops::linear(v[0].transpose(0, 1), v[1].transpose(0, 1), v[2], true); },
            {randn({in, 4}, 26), w_oi, b});
}

// =============================== softmax and layernorm ===========================================

TEST(Gradcheck, SoftmaxLogSoftmax) {
  Tensor a = randn({3, 4, 6}, 31, 1.5f);
  for (int64_t axis : {-1, 0, 1, 2}) {
    GRADCHECK([&](const V& v) { return ops::softmax(v[0], axis); }, {a});
    GRADCHECK([&](const V& v) { return ops::log_softmax(v[0], axis); }, {a});
  }
  GRADCHECK([](const V& v) { return ops::softmax(v[0].transpose(0, 2), -1); }, {a});
}

TEST(Gradcheck, LayerNorm) {
  for (Shape s : {Shape{4, 9}, Shape{2, 3, 17}, Shape{33}}) {
    const int64_t n = s.back();
    Tensor x = ops::add_scalar(randn(s, 41, 1.5f), 0.3f).detach(), w = uniform({n}, 42, 0.5f, 1.5f),
           b = randn({n}, 43);
    GRADCHECK([](const V& v) { return ops::layernorm(v[0], v[1], v[2]); }, {x, w, b});
  }
  // only x requires grad; strided x
  Tensor w = uniform({9}, 44, 0.5f, 1.5f), b = randn({9}, 45);
  GRADCHECK([&](const V& v) { return ops::layernorm(v[0].transpose(0, 1), w, b); }, {randn({9, 4}, 46)});
}

TEST(Gradcheck, RmsNorm) {
  Tensor x = randn({3, 4, 8}, 47), w = uniform({8}, 48, 0.5f, 1.5f);
  GRADCHECK([](const V& v) { return ops::rms_norm(v[0], v[1]); }, {x, w});
  GRADCHECK([](const V& v) { return ops::rms_norm(v[0], v[1], 1e-2f); }, {x, w});
  // strided input
  GRADCHECK([&](const V& v) { return ops::rms_norm(v[0].transpose(0, 1), w); }, {randn({8, 4}, 49)});
}

TEST(Gradcheck, LayerNormMasked) {
  Tensor x = ops::add_scalar(randn({3, 8}, 47, 1.5f), 0.3f).detach(), w = uniform({8}, 48, 0.5f, 1.5f),
         b = randn({8}, 49);
  Tensor mask = Tensor::from_vector({1, 1, 1, 1, 1, 0.5f, 0.2f, 0}, {8});
  GRADCHECK([&](const V& v) { return ops::layernorm_masked(v[0], v[1], v[2], mask); }, {x, w, b});
}

TEST(Gradcheck, LayerNormKept) {
  Tensor x = ops::add_scalar(randn({3, 8}, 50, 1.5f), 0.3f).detach(), w = uniform({8}, 51, 0.5f, 1.5f),
         b = randn({8}, 52);
  Tensor mask = Tensor::from_vector({1, 0.4f, 1, 0, 1, 0.5f, 0.2f, 0}, {8});
  GRADCHECK([&](const V& v) { return ops::layernorm_kept(v[0], v[1], v[2], mask); }, {x, w, b});
}

// =============================== indexing ========================================================

TEST(Gradcheck, EmbeddingRepeatedIds) {
  Tensor w = randn({11, 6}, 51);
  Tensor id = Tensor::from_vector_i64({3, 0, 3, 10, 3, 7, 0, 5}, {2, 4});
  GRADCHECK([&](const V& v) { return ops::embedding(v[0], id); }, {w});
  GRADCHECK([&](const V& v) { return ops::embedding(v[0], id.to(DType::i32)); }, {w});
  GRADCHECK([&](const V& v) { return ops::embedding(v[0], id.transpose(0, 1)); }, {w});
}

TEST(Gradcheck, IndexSelectGatherRepeated) {
  Tensor a = randn({4, 5, 3}, 52);
  Tensor idx = Tensor::from_vector_i64({2, 0, 2, 2, 1}, {5});
  for (int64_t axis : {0, 1, 2, -1}) {
    Tensor ix = ops::clamp(idx.to(DType::f32), 0.f, float(a.size(axis) - 1)).to(DType::i64);
    GRADCHECK([&](const V& v) { return ops::index_select(v[0], axis, ix); }, {a});
  }
  for (int64_t axis : {0, 1, 2}) {
    Shape is = {3, 4, 2};
    is[size_t(axis)] = 6;
    Tensor gi = ids(is, 53 + uint64_t(axis), 0, std::min<int64_t>(2, a.size(axis)));  // many repeats
    GRADCHECK([&](const V& v) { return ops::gather(v[0], axis, gi); }, {a});
  }
}

TEST(Gradcheck, ConcatSplit) {
  Tensor a = randn({3, 2, 5}, 61), b = randn({3, 4, 5}, 62), c = randn({3, 1, 5}, 63);
  GRADCHECK([](const V& v) { return ops::concat(v, 1); }, {a, b, c});
  GRADCHECK([](const V& v) { return ops::concat({v[0], v[0].narrow(1, 0, 1), v[1]}, -2); }, {a, c});
  GRADCHECK([](const V& v) { return ops::concat({v[0].transpose(0, 2), v[1].transpose(0, 2)}, 1); }, {a, b});
  Tensor y = randn({3, 10, 4}, 64);
  GRADCHECK(MultiFn([](const V& v) { return ops::split(v[0], {2, 7, 1}, 1); }), {y});
  GRADCHECK(MultiFn([](const V& v) {
              auto p = ops::split(v[0], {1, 3}, -1);
              return V{ops::mul(p[0], p[1]), p[1]};  // parts meet again in one graph
            }),
            {y});
}

TEST(Gradcheck, WhereMaskedFill) {
  Tensor a = randn({5, 7}, 71), b = randn({7}, 72), s = randn({5, 1}, 73);
  Tensor m = mask_u8({1, 7}, [](int64_t i) { return i % 3 == 0; });
  Tensor cond = mask_u8({5, 7}, [](int64_t i) { return (i * 7) % 5 < 2; });
  GRADCHECK([&](const V& v) { return ops::masked_fill(v[0], m, -3.f); }, {a});
  GRADCHECK([&](const V& v) { return ops::masked_fill(v[0].transpose(0, 1), cond.transpose(0, 1), 1.f); }, {a});
  GRADCHECK([&](const V& v) { return ops::where(cond, v[0], v[1]); }, {a, b});
  GRADCHECK([&](const V& v) { return ops::where(mask_u8({5, 1}, [](int64_t i) { return i != 2; }), v[0], v[1]); },
            {s, b});
}

// =============================== views ===========================================================

TEST(Gradcheck, Views) {
  Tensor a = randn({3, 4, 5}, 81);
  GRADCHECK([](const V& v) { return v[0].reshape({12, 5}); }, {a});
  GRADCHECK([](const V& v) { return v[0].view({-1}); }, {a});
  GRADCHECK([](const V& v) { return v[0].transpose(0, 2).reshape({20, 3}); }, {a});
  GRADCHECK([](const V& v) { return ops::mul(v[0].permute({2, 0, 1}), v[0].permute({2, 0, 1})); }, {a});
  GRADCHECK([](const V& v) { return v[0].narrow(1, 1, 2).narrow(2, 3, 2); }, {a});
  GRADCHECK([](const V& v) { return v[0].transpose(1, 2).contiguous(); }, {a});
  GRADCHECK([](const V& v) { return v[0].unsqueeze(1).squeeze(1).narrow(0, 2, 1).squeeze(0); }, {a});
  GRADCHECK([](const V& v) { return ops::mul_scalar(v[0].clone(), 2.f); }, {a});
  // two overlapping narrows of one tensor
  GRADCHECK([](const V& v) { return ops::add(v[0].narrow(2, 0, 3), v[0].narrow(2, 2, 3)); }, {a});
}

// =============================== attention =======================================================

TEST(Gradcheck, Attention) {
  const int64_t B = 2, T = 5, C = 6, H = 2;
  Tensor qkv = randn({B, T, 3 * C}, 91);
  auto fused = [&](bool causal, Tensor mask) {
    return [=](const V& v) {
      Tensor q = v[0].narrow(2, 0, C), k = v[0].narrow(2, C, C), w = v[0].narrow(2, 2 * C, C);
      return ops::attention(q, k, w, H, causal, mask);
    };
  };
  GradcheckOptions o;
  o.max_samples = 90;  // all of q, k and v get sampled
  GRADCHECK(fused(true, Tensor()), {qkv}, o);
  Tensor mask = mask_u8({B, T}, [&](int64_t i) { return !(i / T == 1 && i % T >= 3); });  // batch 1: 2 pad keys
  GRADCHECK(fused(false, mask), {qkv}, o);
  GRADCHECK(fused(true, mask), {qkv}, o);
  // the packed op (one [B, T, 3C] input, one gradient)
  GRADCHECK([=](const V& v) { return ops::attention_packed(v[0], H, true, mask); }, {qkv}, o);
  GRADCHECK([=](const V& v) { return ops::attention_packed(v[0], H, false); }, {qkv}, o);
  // separate contiguous q, k, v, one head and three heads
  Tensor q = randn({1, 4, 9}, 92), k = randn({1, 4, 9}, 93), v = randn({1, 4, 9}, 94);
  GRADCHECK([](const V& x) { return ops::attention(x[0], x[1], x[2], 3, false); }, {q, k, v});
  GRADCHECK([](const V& x) { return ops::attention(x[0], x[1], x[2], 1, true); }, {q, k, v});
}

TEST(Gradcheck, Rotary) {
  const ops::RopeTables tab = ops::rope_tables(6, 100.0, 4, 2);
  GRADCHECK([&](const V& v) { return ops::rotary(v[0], tab.cos, tab.sin); }, {randn({2, 4, 2, 6}, 95)});
  // strided input ([B, H, T, D] seen as [B, T, H, D])
  GRADCHECK([&](const V& v) { return ops::rotary(v[0].transpose(1, 2), tab.cos, tab.sin); }, {randn({2, 2, 4, 6}, 96)});
}

TEST(Gradcheck, AttentionGrouped) {
  // 4 query heads over 2 kv heads (GQA) and over 1 (MQA), head size 3
  Tensor q = randn({2, 4, 12}, 97), k = randn({2, 4, 6}, 98), v = randn({2, 4, 6}, 99), k1 = randn({2, 4, 3}, 100);
  GradcheckOptions o;
  o.max_samples = 96;
  GRADCHECK([](const V& x) { return ops::attention_grouped(x[0], x[1], x[2], 4, 2, true); }, {q, k, v}, o);
  GRADCHECK([](const V& x) { return ops::attention_grouped(x[0], x[1], x[2], 4, 1, false); }, {q, k1, k1}, o);
  GRADCHECK([](const V& x) { return ops::repeat_kv(x[0], 2, 3); }, {k});
  // ragged groups: 3 query heads on 2 kv heads (0 | 1, 1), and 4 on 2 (0, 0, 0 | 1)
  Tensor q3 = randn({2, 4, 9}, 101);
  GRADCHECK([](const V& x) { return ops::attention_grouped(x[0], x[1], x[2], std::vector<int64_t>{0, 1, 1}, true); },
            {q3, k, v}, o);
  GRADCHECK([](const V& x) { return ops::attention_grouped(x[0], x[1], x[2], std::vector<int64_t>{0, 0, 0, 1}, false); },
            {q, k, v}, o);
  GRADCHECK([](const V& x) { return ops::repeat_kv(x[0], 2, std::vector<int64_t>{1, 0, 1}); }, {k});
}

// =============================== losses ==========================================================

TEST(Gradcheck, CrossEntropy) {
  Tensor logits = randn({6, 9}, 101, 1.5f);
  Tensor t = Tensor::from_vector_i64({3, -100, 8, 0, 3, 5}, {6});
  GRADCHECK([&](const V& v) { return ops::cross_entropy(v[0], t); }, {logits});
  GRADCHECK([&](const V& v) { return ops::cross_entropy(v[0], t.to(DType::i32)); }, {logits});
  Tensor t_no_default = Tensor::from_vector_i64({3, 1, 8, 0, 3, 5}, {6});  // 3 is the ignored class here
  GRADCHECK([&](const V& v) { return ops::cross_entropy(v[0], t_no_default, 3); }, {logits});
  Tensor l3 = randn({2, 3, 7}, 102);
  Tensor t3 = Tensor::from_vector_i64({1, 6, 0, 2, -100, 4}, {2, 3});
  GRADCHECK([&](const V& v) { return ops::cross_entropy(v[0], t3); }, {l3});
  GRADCHECK([&](const V& v) { return ops::cross_entropy(v[0].transpose(0, 1), t3.transpose(0, 1)); }, {l3});
}

TEST(Gradcheck, SoftCrossEntropyAndKlBothSides) {
  Tensor x = randn({5, 8}, 111, 1.5f), t = randn({5, 8}, 112, 1.5f);
  Tensor m = mask_u8({5}, [](int64_t i) { return i != 1 && i != 3; });
  for (float T : {1.f, 2.f})
    for (bool masked : {false, true}) {
      SCOPED_TRACE(::testing::Message() << "T=" << T << " masked=" << masked);
      Tensor mask = masked ? m : Tensor();
      GRADCHECK([&](const V& v) { return ops::soft_cross_entropy(v[0], v[1], T, mask); }, {x, t});
      GRADCHECK([&](const V& v) { return ops::kl_div(v[0], v[1], T, mask); }, {x, t});
      // gradient to one side only (the other is a constant)
      GRADCHECK([&](const V& v) { return ops::kl_div(v[0], t, T, mask); }, {x});
      GRADCHECK([&](const V& v) { return ops::soft_cross_entropy(x, v[0], T, mask); }, {t});
    }
  // 3-D logits
  Tensor x3 = randn({2, 3, 4}, 113), t3 = randn({2, 3, 4}, 114);
  GRADCHECK([](const V& v) { return ops::kl_div(v[0], v[1], 2.f); }, {x3, t3});
}

TEST(Gradcheck, Mse) {
  Tensor a = randn({4, 7}, 121), b = randn({4, 7}, 122);
  GRADCHECK([](const V& v) { return ops::mse(v[0], v[1]); }, {a, b});
  GRADCHECK([](const V& v) { return ops::mse(v[0].transpose(0, 1), v[1].transpose(0, 1)); }, {a, b});
}

// A small composite: linear -> gelu -> layernorm -> cross-entropy, the gradient path of a block.
TEST(Gradcheck, Composite) {
  Tensor x = randn({3, 4, 6}, 131), w = randn({6, 10}, 132, 0.5f), b = randn({10}, 133);
  Tensor lw = uniform({10}, 134, 0.5f, 1.5f), lb = randn({10}, 135);
  Tensor t = ids({3, 4}, 136, 0, 10);
  GRADCHECK(
      [&](const V& v) {
        Tensor h = ops::gelu(ops::linear(v[0], v[1], v[2], true));
        h = ops::layernorm(h, v[3], v[4]);
        return ops::cross_entropy(h, t);
      },
      {x, w, b, lw, lb});
}
