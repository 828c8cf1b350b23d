// Tape autograd: accumulation, reuse, no-grad, detach, errors.
#include <gtest/gtest.h>

#include <cmath>

#include "scion/allocator.h"
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

// Leaf gradients are taken without a copy when the pass holds the only handle, and added in
// place when the leaf alone holds its gradient; every other case copies, so no handle a user or
// a saved tensor still has ever changes under them.
namespace {
// y = 2 sum(x) recorded by hand; its backward makes a fresh gradient and reports where it lives
// (held: the closure keeps it, as the fused LM head keeps the gradients it made ahead).
Tensor doubled(const Tensor& x, const void** made, bool held) {
  Tensor y = ops::mul_scalar(ops::sum_all(x.detach()), 2.f);
  Tensor ahead = held ? ops::mul_scalar(Tensor::ones(x.shape()), 2.f) : Tensor();
  autograd::record("doubled", y, {x}, [x_shape = x.shape(), made, ahead](const Tensor& g) {
    Tensor gx = ahead.defined() ? ahead : ops::mul_scalar(Tensor::ones(x_shape), 2.f);
    gx = ahead.defined() && g.item() == 1.f ? gx : ops::mul_scalar(gx, g.item());
    *made = gx.raw_data();
    return std::vector<Tensor>{gx};
  });
  return y;
}
}  // namespace

TEST(Autograd, LeafTakesAFreshGradientWithoutACopy) {
  for (bool held : {false, true}) {
    Tensor x = Tensor::from_vector({1, 2, 3}, {3}).set_requires_grad(true);
    const void* made = nullptr;
    doubled(x, &made, held).backward();
    EXPECT_EQ(x.grad().raw_data(), made) << "held by the closure: " << held;
    EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{2, 2, 2}));
  }
}

TEST(Autograd, RetainedGraphKeepsItsGradientsAndTheLeafGetsACopy) {
  Tensor x = Tensor::from_vector({1, 2, 3}, {3}).set_requires_grad(true);
  const void* made = nullptr;
  Tensor loss = doubled(x, &made, /*held=*/true);
  loss.backward(Tensor(), /*retain_graph=*/true);
  EXPECT_NE(x.grad().raw_data(), made);  // the closure may run again: its tensor stays its own
  loss.backward();
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{4, 4, 4}));
  loss = doubled(x, &made, true);
  x.zero_grad();
  loss.backward();  // the graph is not kept: the held tensor is taken
  EXPECT_EQ(x.grad().raw_data(), made);
}

TEST(Autograd, SecondGradientIsAddedInPlaceUnlessTheOldOneIsHeld) {
  Tensor x = Tensor::from_vector({1, 2, 3}, {3}).set_requires_grad(true);
  ops::sum_all(ops::mul_scalar(x, 2.f)).backward();
  const void* first = x.grad().raw_data();
  ops::sum_all(ops::mul_scalar(x, 3.f)).backward();
  EXPECT_EQ(x.grad().raw_data(), first);  // accumulated into the leaf's own buffer
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{5, 5, 5}));
  // A handle kept from before keeps its values: the sum goes to a new buffer.
  const Tensor kept = x.grad();
  ops::sum_all(ops::mul_scalar(x, 4.f)).backward();
  EXPECT_EQ(kept.to_vector(), (std::vector<float>{5, 5, 5}));
  EXPECT_EQ(x.grad().to_vector(), (std::vector<float>{9, 9, 9}));
  EXPECT_NE(x.grad().raw_data(), kept.raw_data());
}

TEST(Autograd, OneGradientForTwoLeavesIsNotShared) {
  // add's backward hands the same tensor to both inputs; each leaf must own its gradient.
  Tensor a = Tensor::from_vector({1, 2}, {2}).set_requires_grad(true);
  Tensor b = Tensor::from_vector({3, 4}, {2}).set_requires_grad(true);
  ops::add(a, b).backward(Tensor::from_vector({1, 1}, {2}));
  EXPECT_NE(a.grad().raw_data(), b.grad().raw_data());
  Tensor ga = a.grad();
  ops::add_inplace(ga, Tensor::from_vector({10, 10}, {2}));
  EXPECT_EQ(b.grad().to_vector(), (std::vector<float>{1, 1}));
}

TEST(Autograd, AddInplaceSaysWhatIsWrong) {
  Tensor acc = Tensor::zeros({2, 3});
  try {
    ops::add_inplace(acc, Tensor::zeros({3, 2}));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("shapes differ"), std::string::npos) << e.what();
  }
  Tensor strided = Tensor::zeros({3, 2}).transpose(0, 1);
  EXPECT_THROW(ops::add_inplace(strided, Tensor::zeros({2, 3})), Error);
  Tensor t = Tensor::zeros({2, 3}).transpose(0, 1);  // a strided addend is fine
  Tensor acc2 = Tensor::ones({3, 2});
  ops::add_inplace(acc2, t);
  EXPECT_EQ(acc2.to_vector(), std::vector<float>(6, 1.f));
}

TEST(Autograd, TiedEmbeddingAddsItsRowsIntoTheHeadsGradient) {
  // A tied table: looked up at the bottom, used as the head at the top. The head's gradient
  // arrives first; the lookup's rows are added into it in place (no zero-filled table), and
  // the sum is the one of two separate gradients.
  const int64_t V = 4096, C = 8;
  const Tensor w0 = ops::mul_scalar(Tensor::randn({V, C}, 21), 0.5f);
  const Tensor ids = Tensor::from_vector_i64({3, 5, 3, 36, 0, 5}, {6});
  const Tensor targets = Tensor::from_vector_i64({1, 2, 3, 4, 5, 6}, {6});
  auto loss_of = [&](const Tensor& table, const Tensor& head) {
    return ops::linear_cross_entropy(ops::embedding(table, ids), head, Tensor(), targets);
  };
  Tensor tied = w0.clone().set_requires_grad(true);
  Tensor loss = loss_of(tied, tied);
  Allocator& alloc = allocator_for(Device::cpu());
  alloc.reset_peak();
  const int64_t before_backward = alloc.stats().bytes_in_use;
  loss.backward();
  // no [V, C] table was made in backward (the head's gradient was made in the forward pass)
  EXPECT_LT(alloc.stats().peak_bytes_in_use - before_backward, V * C * 4 / 2);
  Tensor bottom = w0.clone().set_requires_grad(true), top = w0.clone().set_requires_grad(true);
  loss_of(bottom, top).backward();
  const auto got = tied.grad().to_vector(), a = bottom.grad().to_vector(), b = top.grad().to_vector();
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], a[i] + b[i], 1e-6f * (1 + std::fabs(b[i]))) << i;
  // A second pass adds into the same buffer; a held gradient is left as it was.
  const void* buffer = tied.grad().raw_data();
  loss_of(tied, tied).backward();
  EXPECT_EQ(tied.grad().raw_data(), buffer);
  const Tensor held = tied.grad();
  const auto before = held.to_vector();
  loss_of(tied, tied).backward();
  EXPECT_EQ(held.to_vector(), before);
  const auto thrice = tied.grad().to_vector();
  for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(thrice[i], 3 * got[i], 1e-5f * (1 + std::fabs(got[i]))) << i;
}
