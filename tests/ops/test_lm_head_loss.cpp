// ops::linear_cross_entropy, the LM head fused with its cross-entropy, against the unfused
// ops (cross_entropy of linear): loss and gradients of input, weight and bias, with ignored
// targets, odd vocabulary sizes, every chunking, an upstream gradient other than 1, bf16
// GEMMs, finite differences, 1 and 2 threads, and its refusals.
#include <gtest/gtest.h>

#include "ops/test_util.h"
#include "scion/precision.h"
#include "scion/threads.h"

namespace scion {
namespace {
using test::DVec;

struct Grads {
  float loss = 0;
  Tensor dx, dw, db;
};

struct Case {
  Tensor x, w, b, t;
};

Case make_case(int64_t rows, int64_t C, int64_t V, bool bias, uint64_t seed, int ignored_every = 5) {
  Case c;
  c.x = test::randn({rows, C}, seed, 1.f);
  c.w = test::randn({V, C}, seed + 1, 0.3f);
  if (bias) c.b = test::randn({V}, seed + 2, 0.5f);
  c.t = test::ids({rows}, seed + 3, 0, V);
  if (ignored_every > 0)
    for (int64_t r = 0; r < rows; r += ignored_every) c.t.data<int64_t>()[r] = -100;
  return c;
}

// Loss * upstream, backward, and the leaves' gradients.
Grads run(const Case& c, bool fused, int64_t chunk, float upstream = 1.f) {
  Tensor x = c.x.clone(), w = c.w.clone(), b = c.b.defined() ? c.b.clone() : Tensor();
  x.set_requires_grad(true);
  w.set_requires_grad(true);
  if (b.defined()) b.set_requires_grad(true);
  Tensor loss = fused ? ops::linear_cross_entropy(x, w, b, c.t, -100, chunk)
                      : ops::cross_entropy(ops::linear(x, w, b, /*w_in_out=*/false), c.t, -100);
  Grads g;
  g.loss = loss.item();
  ops::mul_scalar(loss, upstream).backward();
  g.dx = x.grad();
  g.dw = w.grad();
  if (b.defined()) g.db = b.grad();
  return g;
}

TEST(LinearCrossEntropy, EqualsTheUnfusedHeadAndLossForEveryChunking) {
  for (const auto& [rows, C, V, bias] : std::vector<std::tuple<int64_t, int64_t, int64_t, bool>>{
           {37, 16, 101, false}, {64, 24, 1003, true}, {130, 8, 7, true}, {5, 32, 50, false}}) {
    const Case c = make_case(rows, C, V, bias, uint64_t(rows * 1000 + V));
    const Grads ref = run(c, false, 0);
    for (int64_t chunk : {int64_t(1), int64_t(3), int64_t(16), rows, rows + 7, int64_t(0)}) {
      SCOPED_TRACE("rows " + std::to_string(rows) + " V " + std::to_string(V) + " chunk " + std::to_string(chunk));
      const Grads f = run(c, true, chunk);
      // Same per-row arithmetic: the loss and dx agree to the last bits or nearly.
      EXPECT_NEAR(f.loss, ref.loss, 1e-6 * std::fabs(ref.loss));
      SCION_EXPECT_CLOSE(f.dx, test::to_double(ref.dx), 1e-7, 1e-5);
      // dW and db are summed chunk by chunk: f32 rounding of a different order.
      SCION_EXPECT_CLOSE(f.dw, test::to_double(ref.dw), 1e-7, 1e-5);
      if (bias) {
        SCION_EXPECT_CLOSE(f.db, test::to_double(ref.db), 1e-7, 1e-5);
      }
    }
  }
}

TEST(LinearCrossEntropy, ScalesItsGradientsByTheUpstreamGradient) {
  const Case c = make_case(20, 8, 33, true, 7);
  const Grads ref = run(c, false, 0, 2.5f), f = run(c, true, 6, 2.5f);
  SCION_EXPECT_CLOSE(f.dx, test::to_double(ref.dx), 1e-7, 1e-5);
  SCION_EXPECT_CLOSE(f.dw, test::to_double(ref.dw), 1e-7, 1e-5);
  SCION_EXPECT_CLOSE(f.db, test::to_double(ref.db), 1e-7, 1e-5);
}

TEST(LinearCrossEntropy, LeadingAxesAndEveryTargetIgnored) {
  Case c = make_case(12, 8, 19, false, 11, 0);
  Tensor x3 = c.x.view({3, 4, 8}), t3 = c.t.view({3, 4});
  const float fused = ops::linear_cross_entropy(x3, c.w, Tensor(), t3, -100, 5).item();
  const float ref = ops::cross_entropy(ops::matmul(x3, c.w, false, true), t3).item();
  EXPECT_NEAR(fused, ref, 1e-6 * std::fabs(ref));
  // Nothing counts: the loss is 0 and so are the gradients (as cross_entropy's).
  Tensor none = Tensor::full({12}, -100.f).to(DType::i64);
  Tensor x = c.x.clone();
  x.set_requires_grad(true);
  Tensor l = ops::linear_cross_entropy(x, c.w, Tensor(), none);
  EXPECT_EQ(l.item(), 0.f);
  l.backward();
  for (float v : x.grad().to_vector()) ASSERT_EQ(v, 0.f);
}

TEST(LinearCrossEntropy, FiniteDifferenceGradients) {
  const Case c = make_case(9, 6, 13, true, 21, 4);
  EXPECT_TRUE(test::gradcheck(
      [&](const std::vector<Tensor>& v) { return std::vector<Tensor>{ops::linear_cross_entropy(v[0], v[1], v[2], c.t, -100, 4)}; },
      {c.x.clone(), c.w.clone(), c.b.clone()}));
}

TEST(LinearCrossEntropy, SameBitsWithOneAndTwoThreads) {
  // Large enough for the GEMMs' parallel blocks and several chunks.
  const Case c = make_case(300, 64, 5000, true, 31);
  set_num_threads(1);
  const Grads one = run(c, true, 0);
  set_num_threads(2);
  const Grads two = run(c, true, 0);
  set_num_threads(0);
  EXPECT_EQ(one.loss, two.loss);
  EXPECT_TRUE(test::same_bits(one.dx, two.dx));
  EXPECT_TRUE(test::same_bits(one.dw, two.dw));
  EXPECT_TRUE(test::same_bits(one.db, two.db));
}

TEST(LinearCrossEntropy, Bf16GemmsStayWithinBf16ToleranceOfTheF32Op) {
  const Case c = make_case(96, 64, 777, true, 41);
  const Grads f32 = run(c, true, 32);
  set_matmul_precision(MatmulPrecision::bf16);
  const Grads bf = run(c, true, 32), bf_ref = run(c, false, 0);
  set_matmul_precision(MatmulPrecision::f32);
  // bf16 inputs (2^-9 relative each) over K = 64 or 777 terms: loose, but it must differ
  // from f32 (the bf16 path ran) and agree with the unfused bf16 ops as closely as f32 does.
  EXPECT_NEAR(bf.loss, f32.loss, 2e-2 * std::fabs(f32.loss));
  EXPECT_NE(bf.loss, f32.loss);
  SCION_EXPECT_CLOSE(bf.dx, test::to_double(f32.dx), 2e-3, 5e-2);
  SCION_EXPECT_CLOSE(bf.dw, test::to_double(f32.dw), 2e-3, 5e-2);
  EXPECT_NEAR(bf.loss, bf_ref.loss, 1e-6 * std::fabs(bf_ref.loss));
  SCION_EXPECT_CLOSE(bf.dx, test::to_double(bf_ref.dx), 1e-7, 1e-5);
  SCION_EXPECT_CLOSE(bf.dw, test::to_double(bf_ref.dw), 1e-6, 1e-4);
}

TEST(LinearCrossEntropy, RefusesBadInputWithAClearError) {
  const Case c = make_case(6, 4, 9, true, 51, 0);
  auto error = [](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  Tensor bad_t = c.t.clone();
  bad_t.data<int64_t>()[2] = 9;
  EXPECT_NE(error([&] { ops::linear_cross_entropy(c.x, c.w, c.b, bad_t); }).find("target 9 at row 2 is outside [0, 9)"),
            std::string::npos);
  EXPECT_NE(error([&] { ops::linear_cross_entropy(c.x, c.w.view({9, 2, 2}), c.b, c.t); }).find("weight must be [V, C]"),
            std::string::npos);
  EXPECT_NE(error([&] { ops::linear_cross_entropy(c.x, c.w.transpose(0, 1).contiguous(), Tensor(), c.t); })
                .find("has 4 features but weight"),
            std::string::npos);
  EXPECT_NE(error([&] { ops::linear_cross_entropy(c.x, c.w, Tensor::zeros({8}), c.t); }).find("bias must be [9]"),
            std::string::npos);
  EXPECT_NE(error([&] { ops::linear_cross_entropy(c.x, c.w, c.b, c.t.view({2, 3})); }).find("do not match input"),
            std::string::npos);
  EXPECT_NE(error([&] { ops::linear_cross_entropy(c.x, c.w, c.b, c.t, -100, -1); }).find("chunk_rows must be >= 0"),
            std::string::npos);
}

}  // namespace
}  // namespace scion
