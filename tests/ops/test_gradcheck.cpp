// Every differentiable op's gradients against central finite differences.
#include <gtest/gtest-spi.h>

#include "ops/check.h"

using namespace scion;
using namespace scion::test;
using V = std::vector<Tensor>;

TEST(Grad, BroadcastingArithmetic) {
  gradcheck([](const V& v) { return ops::add(v[0], v[1]); }, {rnd({3, 5}, 1), rnd({5}, 2)}, "add row-broadcast");
  gradcheck([](const V& v) { return ops::sub(v[0], v[1]); }, {rnd({2, 1, 4}, 3), rnd({3, 1}, 4)}, "sub 3-D broadcast");
  gradcheck([](const V& v) { return ops::mul(v[0], v[1]); }, {rnd({4, 3}, 5), rnd({4, 1}, 6)}, "mul column-broadcast");
  gradcheck([](const V& v) { return ops::div(v[0], v[1]); }, {rnd({3, 4}, 7), rnd({3, 4}, 8, 0.5f, 2.f)}, "div");
  gradcheck([](const V& v) { return ops::mul(v[0].transpose(0, 1), v[1]); }, {rnd({4, 3}, 9), rnd({3, 4}, 10)},
            "mul of a transposed view");
}

TEST(Grad, ScalarAndUnary) {
  gradcheck([](const V& v) { return ops::add_scalar(v[0], 2.f); }, {rnd({7}, 1)}, "add_scalar");
  gradcheck([](const V& v) { return ops::mul_scalar(v[0], -3.f); }, {rnd({7}, 2)}, "mul_scalar");
  gradcheck([](const V& v) { return ops::pow_scalar(v[0], 3.f); }, {rnd({7}, 3, 0.5f, 2.f)}, "pow_scalar");
  gradcheck([](const V& v) { return ops::neg(v[0]); }, {rnd({7}, 4)}, "neg");
  gradcheck([](const V& v) { return ops::exp(v[0]); }, {rnd({33}, 5)}, "exp");
  gradcheck([](const V& v) { return ops::log(v[0]); }, {rnd({33}, 6, 0.5f, 3.f)}, "log");
  gradcheck([](const V& v) { return ops::tanh(v[0]); }, {rnd({33}, 7, -2.f, 2.f)}, "tanh");
  gradcheck([](const V& v) { return ops::sqrt(v[0]); }, {rnd({33}, 8, 0.5f, 3.f)}, "sqrt");
  gradcheck([](const V& v) { return ops::rsqrt(v[0]); }, {rnd({33}, 9, 0.5f, 3.f)}, "rsqrt");
  gradcheck([](const V& v) { return ops::gelu(v[0]); }, {rnd({65}, 10, -3.f, 3.f)}, "gelu");
  // Away from the kinks (|x| >= 0.1 for relu; clamp bounds not hit within eps).
  Tensor r = Tensor::from_vector({-1.f, -0.5f, -0.2f, 0.3f, 0.7f, 1.5f}, {6});
  gradcheck([](const V& v) { return ops::relu(v[0]); }, {r}, "relu");
  gradcheck([](const V& v) { return ops::clamp(v[0], -0.6f, 0.8f); }, {r}, "clamp");
}

TEST(Grad, Reductions) {
  gradcheck([](const V& v) { return ops::sum(v[0], {1}); }, {rnd({3, 5, 2}, 1)}, "sum axis 1");
  gradcheck([](const V& v) { return ops::sum(v[0], {0, 2}, true); }, {rnd({3, 5, 2}, 2)}, "sum axes 0,2 keepdim");
  gradcheck([](const V& v) { return ops::mean(v[0], {2}); }, {rnd({3, 5, 7}, 3)}, "mean");
  gradcheck([](const V& v) { return ops::sum_all(v[0]); }, {rnd({17, 3}, 4)}, "sum_all");
  gradcheck([](const V& v) { return ops::mean_all(v[0]); }, {rnd({17, 3}, 5)}, "mean_all");
  gradcheck([](const V& v) { return ops::sum_to(v[0], {1, 4}); }, {rnd({3, 2, 4}, 6)}, "sum_to");
  // max: distinct values so the arg-max is stable under eps.
  Tensor m = Tensor::from_vector({0.1f, 0.9f, 0.4f, 1.7f, 0.2f, -0.5f}, {2, 3});
  gradcheck([](const V& v) { return ops::max(v[0], 1); }, {m}, "max", 1e-3);
}

TEST(Grad, MatmulAllTransposesAndSharedOperand) {
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      const Shape a = ta ? Shape{2, 5, 3} : Shape{2, 3, 5}, b = tb ? Shape{2, 4, 5} : Shape{2, 5, 4};
      gradcheck([=](const V& v) { return ops::matmul(v[0], v[1], ta, tb); }, {rnd(a, 11), rnd(b, 12)},
                "bmm ta=" + std::to_string(ta) + " tb=" + std::to_string(tb));
      const Shape b2 = tb ? Shape{4, 5} : Shape{5, 4};
      gradcheck([=](const V& v) { return ops::matmul(v[0], v[1], ta, tb); }, {rnd(a, 13), rnd(b2, 14)},
                "matmul with a shared 2-D right operand ta=" + std::to_string(ta) + " tb=" + std::to_string(tb));
    }
  gradcheck([](const V& v) { return ops::matmul(v[0], v[1]); }, {rnd({3, 5}, 15), rnd({2, 5, 4}, 16)},
            "shared 2-D left operand");
}

TEST(Grad, LinearBothLayouts) {
  gradcheck([](const V& v) { return ops::linear(v[0], v[1], v[2], true); }, {rnd({2, 3, 5}, 1), rnd({5, 4}, 2), rnd({4}, 3)},
            "linear [in,out] + bias");
  gradcheck([](const V& v) { return ops::linear(v[0], v[1], v[2], false); }, {rnd({3, 5}, 4), rnd({4, 5}, 5), rnd({4}, 6)},
            "linear [out,in] + bias");
  gradcheck([](const V& v) { return ops::linear(v[0], v[1], Tensor(), false); }, {rnd({3, 5}, 7), rnd({4, 5}, 8)},
            "linear without bias");
}

TEST(Grad, SoftmaxFamilyAndLayernorm) {
  gradcheck([](const V& v) { return ops::softmax(v[0]); }, {rnd({3, 7}, 1, -2.f, 2.f)}, "softmax");
  gradcheck([](const V& v) { return ops::log_softmax(v[0]); }, {rnd({3, 7}, 2, -2.f, 2.f)}, "log_softmax");
  gradcheck([](const V& v) { return ops::softmax(v[0], 0); }, {rnd({4, 3}, 3, -2.f, 2.f)}, "softmax axis 0");
  gradcheck([](const V& v) { return ops::layernorm(v[0], v[1], v[2]); }, {rnd({4, 9}, 4, -2.f, 2.f), rnd({9}, 5, 0.5f, 1.5f), rnd({9}, 6)},
            "layernorm x, weight, bias");
}

TEST(Grad, IndexingOps) {
  Tensor ids = Tensor::from_vector_i64({1, 3, 1, 0, 3, 3}, {2, 3});  // repeated ids accumulate
  gradcheck([&](const V& v) { return ops::embedding(v[0], ids); }, {rnd({5, 4}, 1)}, "embedding");
  Tensor idx = Tensor::from_vector_i64({2, 0, 2}, {3});
  gradcheck([&](const V& v) { return ops::index_select(v[0], 1, idx); }, {rnd({2, 4, 3}, 2)}, "index_select");
  Tensor gidx = Tensor::from_vector_i64({0, 2, 2, 1, 1, 0}, {2, 3});
  gradcheck([&](const V& v) { return ops::gather(v[0], 1, gidx); }, {rnd({2, 4}, 3)}, "gather");
  gradcheck([](const V& v) { return ops::concat({v[0], v[1]}, 1); }, {rnd({2, 3}, 4), rnd({2, 5}, 5)}, "concat");
  gradcheck([](const V& v) { return ops::mul(ops::split(v[0], {2, 3}, 1)[1], ops::split(v[0], {2, 3}, 1)[1]); },
            {rnd({2, 5}, 6)}, "split (a part used twice)");
  gradcheck([](const V& v) { return v[0].reshape({3, 4}).transpose(0, 1).narrow(0, 1, 2); }, {rnd({2, 6}, 7)},
            "reshape, transpose, narrow");
  Tensor mask = Tensor::from_vector({1, 0, 0, 1, 0, 1}, {2, 3}).to(DType::u8);
  gradcheck([&](const V& v) { return ops::masked_fill(v[0], mask, 5.f); }, {rnd({2, 3}, 8)}, "masked_fill");
  Tensor cond = Tensor::from_vector({1, 0, 1}, {3}).to(DType::u8);
  gradcheck([&](const V& v) { return ops::where(cond, v[0], v[1]); }, {rnd({2, 3}, 9), rnd({3}, 10)}, "where");
  gradcheck([](const V& v) { return ops::dropout(v[0], 0.3f, 77); }, {rnd({40}, 11)}, "dropout (fixed seed)");
}

TEST(Grad, AttentionCausalMaskedAndStrided) {
  const int64_t B = 2, T = 5, C = 6;
  gradcheck([](const V& v) { return ops::attention(v[0], v[1], v[2], 2, true); },
            {rnd({B, T, C}, 1), rnd({B, T, C}, 2), rnd({B, T, C}, 3)}, "attention causal", 1e-2, 3e-3, 3e-2, 64);
  Tensor pad = Tensor::from_vector({1, 1, 1, 1, 1, 1, 1, 1, 0, 0}, {B, T}).to(DType::u8);
  gradcheck([&](const V& v) { return ops::attention(v[0], v[1], v[2], 3, false, pad); },
            {rnd({B, T, C}, 4), rnd({B, T, C}, 5), rnd({B, T, C}, 6)}, "attention bidirectional with padding", 1e-2,
            3e-3, 3e-2, 64);
  gradcheck([&](const V& v) {
    return ops::attention(v[0].narrow(2, 0, C), v[0].narrow(2, C, C), v[0].narrow(2, 2 * C, C), 2, true);
  }, {rnd({B, T, 3 * C}, 7)}, "attention on narrow views of one qkv tensor", 1e-2, 3e-3, 3e-2, 64);
}

TEST(Grad, Losses) {
  Tensor targets = Tensor::from_vector_i64({2, -100, 0, 4}, {4});
  gradcheck([&](const V& v) { return ops::cross_entropy(v[0], targets); }, {rnd({4, 5}, 1, -2.f, 2.f)},
            "cross_entropy with ignore_index");
  Tensor rows = Tensor::from_vector({1, 0, 1, 1}, {4}).to(DType::u8);
  for (float T : {1.f, 2.f}) {
    gradcheck([&](const V& v) { return ops::soft_cross_entropy(v[0], v[1], T, rows); },
              {rnd({4, 6}, 2, -2.f, 2.f), rnd({4, 6}, 3, -2.f, 2.f)}, "soft_cross_entropy, both sides, T=" + std::to_string(T));
    gradcheck([&](const V& v) { return ops::kl_div(v[0], v[1], T, rows); },
              {rnd({4, 6}, 4, -2.f, 2.f), rnd({4, 6}, 5, -2.f, 2.f)}, "kl_div, both sides, T=" + std::to_string(T));
  }
  gradcheck([](const V& v) { return ops::mse(v[0], v[1]); }, {rnd({3, 4}, 6), rnd({3, 4}, 7)}, "mse");
}

TEST(Grad, GradcheckCatchesAWrongGradient) {
  // x * detach(x) has true derivative 2x but the tape sees only x: the check must fail.
  EXPECT_NONFATAL_FAILURE(
      gradcheck([](const V& v) { return ops::mul(v[0], v[0].detach()); }, {rnd({1}, 1, 0.5f, 1.f)}, "wrong"),
      "analytic");
}
