// Tape autograd: accumulation, reuse, no-grad, detach, errors.
#include <gtest/gtest.h>

#include "scion/autograd.h"
#include "scion/ops.h"

using namespace scion;

TEST(Autograd, ScalarBackwardAndLeafAccumulation) {
  Tensor x = Tensor::from_vector({1, 2, 3}, {3}).set_requires_grad(true);
  Tensor y = ops::sum_all(ops::mul(x, x));  // d/dx = 2x
  y.backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{2, 4, 6}));
  // A second backward adds to the existing gradient.
  ops::sum_all(ops::mul_scalar(x, 3.f)).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{5, 7, 9}));
  x.zero_grad();
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, InputUsedTwiceAccumulates) {
  Tensor x = Tensor::from_vector({2, -1}, {2}).set_requires_grad(true);
  Tensor a = ops::mul_scalar(x, 2.f);
  Tensor y = ops::sum_all(ops::add(ops::mul(a, x), a));  // 2x^2 + 2x -> 4x + 2
  y.backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{10, -2}));
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor x = Tensor::ones({3}).set_requires_grad(true);
  Tensor y;
  {
    NoGradGuard g;
    y = ops::mul_scalar(x, 2.f);
  }
  EXPECT_FALSE(y.requires_grad());
  EXPECT_THROW(ops::sum_all(y).backward(), Error);
  EXPECT_TRUE(autograd::grad_enabled());
}

TEST(Autograd, DetachCutsTheGraph) {
  Tensor x = Tensor::from_vector({1, 2}, {2}).set_requires_grad(true);
  Tensor y = ops::mul(x, x.detach());  // only the first factor carries gradient: d/dx = x
  ops::sum_all(y).backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{1, 2}));
  EXPECT_FALSE(x.detach().requires_grad());
}

TEST(Autograd, NonScalarNeedsSeedAndGraphIsFreed) {
  Tensor x = Tensor::ones({2}).set_requires_grad(true);
  Tensor y = ops::mul_scalar(x, 3.f);
  EXPECT_THROW(y.backward(), Error);
  y.backward(Tensor::from_vector({1, 2}, {2}), /*retain_graph=*/true);
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{3, 6}));
  y.backward(Tensor::from_vector({1, 1}, {2}));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{6, 9}));
  EXPECT_THROW(y.backward(Tensor::from_vector({1, 1}, {2})), Error);  // graph freed
}

TEST(Autograd, GradientsFlowThroughViews) {
  Tensor x = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}).set_requires_grad(true);
  Tensor y = ops::sum_all(ops::mul(x.transpose(0, 1).narrow(0, 1, 2), Tensor::full({2, 2}, 2.0)));
  y.backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{0, 2, 2, 0, 2, 2}));
}

TEST(Autograd, RequiresGradOnlyForFloatLeaves) {
  EXPECT_THROW(Tensor::zeros({2}, DType::i64).set_requires_grad(true), Error);
  Tensor x = Tensor::ones({2}).set_requires_grad(true);
  Tensor y = ops::mul_scalar(x, 2.f);
  EXPECT_THROW(y.set_requires_grad(false), Error);
}
