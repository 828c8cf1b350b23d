// `precision = "bf16"`: GEMM inputs rounded to bf16, f32 accumulation (oneDNN). Values against
// a double-precision product of the bf16-rounded inputs and of the exact ones, every
// transpose and beta, the blocked and the unblocked path; the same bits at 1 and 2 threads;
// and f32 untouched once the precision is back to f32.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "ops/test_util.h"
#include "scion/precision.h"
#include "scion/threads.h"

using namespace scion;
using namespace scion::test;

namespace {

float round_bf16(float f) {  // round to nearest even, as the kernel does
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7fffu + ((u >> 16) & 1u);
  u &= 0xffff0000u;
  float r;
  std::memcpy(&r, &u, 4);
  return r;
}

// C = op(A) op(B) in double, from A and B as given (each element passed through `in`).
template <class F>
std::vector<double> reference(const Tensor& a, const Tensor& b, bool ta, bool tb, F in) {
  const auto av = a.to_vector(), bv = b.to_vector();
  const int64_t M = ta ? a.size(1) : a.size(0), K = ta ? a.size(0) : a.size(1), N = tb ? b.size(0) : b.size(1);
  std::vector<double> c(size_t(M * N), 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t k = 0; k < K; ++k) {
      const double x = in(av[size_t(ta ? k * M + i : i * K + k)]);
      for (int64_t j = 0; j < N; ++j) c[size_t(i * N + j)] += x * in(bv[size_t(tb ? j * K + k : k * N + j)]);
    }
  return c;
}

class Bf16 : public ::testing::Test {
 protected:
  void SetUp() override { set_matmul_precision(MatmulPrecision::bf16); }
  void TearDown() override {
    set_matmul_precision(MatmulPrecision::f32);
    set_num_threads(0);
  }
};

}  // namespace

TEST_F(Bf16, ProductsOfRoundedInputsAccumulatedInF32) {
  struct Case {
    int64_t M, N, K;
  };
  // Small (one call), odd sizes, and large enough for the row- and the column-blocked paths.
  for (const Case c : {Case{5, 7, 3}, Case{130, 70, 33}, Case{512, 96, 128}, Case{96, 640, 160}})
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        SCOPED_TRACE(testing::Message() << c.M << "x" << c.N << "x" << c.K << " ta=" << ta << " tb=" << tb);
        const Tensor a = ta ? randn({c.K, c.M}, 1) : randn({c.M, c.K}, 1);
        const Tensor b = tb ? randn({c.N, c.K}, 2) : randn({c.K, c.N}, 2);
        const auto got = ops::matmul(a, b, ta, tb).to_vector();
        const auto rounded = reference(a, b, ta, tb, round_bf16);
        const auto exact = reference(a, b, ta, tb, [](float x) { return x; });
        double worst_rounded = 0, worst_exact = 0, scale = 0;
        for (size_t i = 0; i < got.size(); ++i) {
          worst_rounded = std::max(worst_rounded, std::abs(got[i] - rounded[i]));
          worst_exact = std::max(worst_exact, std::abs(got[i] - exact[i]));
          scale = std::max(scale, std::abs(exact[i]));
        }
        // Against the rounded inputs only f32 accumulation error is left; against the exact
        // inputs, bf16's 8-bit mantissa (relative 2^-9 per input) over sqrt(K)-sized sums.
        EXPECT_LT(worst_rounded, 1e-5 * std::sqrt(double(c.K)) * (1 + scale));
        EXPECT_LT(worst_exact, 2e-2 * std::sqrt(double(c.K)));
        EXPECT_GT(worst_exact, 0.0) << "the product is exact: the bf16 path did not run";
      }
}

TEST_F(Bf16, BetaAccumulatesIntoTheF32Output) {
  // A gradient that accumulates (beta = 1): the second backward adds to the first.
  Tensor a = randn({256, 192}, 3), b = randn({192, 160}, 4);
  a.set_requires_grad(true);
  Tensor c = ops::matmul(a, b);
  const Tensor g = randn(c.shape(), 5);
  c.backward(g);
  const auto once = a.grad().to_vector();
  Tensor c2 = ops::matmul(a, b);
  c2.backward(g);
  const auto twice = a.grad().to_vector();
  for (size_t i = 0; i < once.size(); ++i) ASSERT_NEAR(twice[i], 2 * once[i], 1e-4 * (1 + std::abs(once[i]))) << i;
}

TEST_F(Bf16, OneAndTwoThreadsGiveTheSameBits) {
  const Tensor a = randn({1024, 256}, 6), b = randn({256, 768}, 7), w = randn({320, 256}, 8);
  set_num_threads(1);
  const Tensor c1 = ops::matmul(a, b), d1 = ops::matmul(a, w, false, true);
  set_num_threads(2);
  const Tensor c2 = ops::matmul(a, b), d2 = ops::matmul(a, w, false, true);
  EXPECT_EQ(std::memcmp(c1.raw_data(), c2.raw_data(), c1.nbytes()), 0);
  EXPECT_EQ(std::memcmp(d1.raw_data(), d2.raw_data(), d1.nbytes()), 0);
}

TEST_F(Bf16, F32IsExactAgainOnceTheRunEnds) {
  const Tensor a = randn({64, 48}, 9), b = randn({48, 40}, 10);
  const auto bf = ops::matmul(a, b).to_vector();
  set_matmul_precision(MatmulPrecision::f32);
  const auto f32 = ops::matmul(a, b).to_vector();
  const auto exact = reference(a, b, false, false, [](float x) { return x; });
  double worst = 0;
  for (size_t i = 0; i < f32.size(); ++i) worst = std::max(worst, std::abs(f32[i] - exact[i]));
  EXPECT_LT(worst, 1e-4);
  EXPECT_NE(bf, f32);
  EXPECT_THROW(parse_matmul_precision("fp8"), Error);
}

TEST_F(Bf16, LinearRoundsEachOperandOnceWithTheBitsOfRoundingPerProduct) {
  // linear() rounds x, W and the upstream gradient once for its three products; matmul()
  // rounds inside each product. The copies are the same, so are the bits: output, dx, dW,
  // for both weight layouts, and a 3-D input.
  for (bool w_in_out : {false, true}) {
    SCOPED_TRACE(testing::Message() << "w_in_out=" << w_in_out);
    Tensor x = randn({4, 96, 80}, 11), w = w_in_out ? randn({80, 144}, 12) : randn({144, 80}, 12);
    Tensor x2 = x.clone(), w2 = w.clone();
    x.set_requires_grad(true), w.set_requires_grad(true), x2.set_requires_grad(true), w2.set_requires_grad(true);
    const Tensor g = randn({4, 96, 144}, 13);
    Tensor y = ops::linear(x, w, Tensor(), w_in_out);
    Tensor y2 = ops::matmul(x2, w2, false, !w_in_out);
    ASSERT_EQ(y.shape(), y2.shape());
    EXPECT_EQ(y.to_vector(), y2.to_vector());
    y.backward(g);
    y2.backward(g);
    EXPECT_EQ(x.grad().to_vector(), x2.grad().to_vector());
    EXPECT_EQ(w.grad().to_vector(), w2.grad().to_vector());
    // and it is the bf16 path: f32 products differ
    set_matmul_precision(MatmulPrecision::f32);
    EXPECT_NE(ops::linear(x.detach(), w.detach(), Tensor(), w_in_out).to_vector(), y.to_vector());
    set_matmul_precision(MatmulPrecision::bf16);
  }
}
