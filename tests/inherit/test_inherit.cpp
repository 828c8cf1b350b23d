#include <gtest/gtest.h>

#include <cmath>

#include "inherit.h"
#include "scion/ops.h"

using namespace scion;

TEST(Inherit, IdenticalTeacherGivesZeroKlAndZeroGradient) {
  Tensor logits = Tensor::randn({2, 5, 11}, 1).set_requires_grad(true);
  Tensor targets = Tensor::randint({2, 5}, 2, 0, 11);
  auto terms = inherit::inherit_loss(logits, logits.detach().clone(), targets, /*alpha=*/1.0);
  EXPECT_NEAR(terms.kl.item(), 0.f, 1e-6f);
  EXPECT_NEAR(terms.total.item(), 0.f, 1e-6f);
  terms.total.backward();
  for (float g : logits.grad().to_vector()) EXPECT_NEAR(g, 0.f, 1e-6f);
}

TEST(Inherit, MatchesTheFormulaAndIgnoresUntargetedRows) {
  const float tau = 2.f;
  Tensor s = Tensor::randn({6, 7}, 3), t = Tensor::randn({6, 7}, 4);
  Tensor targets = Tensor::from_vector_i64({1, -100, 3, 4, -100, 6}, {6});
  auto terms = inherit::inherit_loss(s, t, targets, 0.3, tau);
  // Reference in double: KL over rows with a target, times tau^2; CE likewise.
  auto sv = s.to_vector(), tv = t.to_vector();
  double kl = 0, ce = 0;
  int n = 0;
  for (int r = 0; r < 6; ++r) {
    const int64_t y = targets.to_vector_i64()[size_t(r)];
    if (y == -100) continue;
    ++n;
    double zs = 0, zt = 0, z1 = 0;
    for (int v = 0; v < 7; ++v) zs += std::exp(sv[size_t(r * 7 + v)] / tau), zt += std::exp(tv[size_t(r * 7 + v)] / tau),
                                 z1 += std::exp(sv[size_t(r * 7 + v)]);
    for (int v = 0; v < 7; ++v) {
      const double p = std::exp(tv[size_t(r * 7 + v)] / tau) / zt, q = std::exp(sv[size_t(r * 7 + v)] / tau) / zs;
      kl += p * std::log(p / q);
    }
    ce += std::log(z1) - sv[size_t(r * 7 + y)];
  }
  kl = kl / n * tau * tau;
  ce /= n;
  EXPECT_NEAR(terms.kl.item(), kl, 1e-5);
  EXPECT_NEAR(terms.lm.item(), ce, 1e-5);
  EXPECT_NEAR(terms.total.item(), 0.7 * ce + 0.3 * kl, 1e-5);
  // KL direction: swapping teacher and student changes the value (KL is not symmetric).
  EXPECT_GT(std::fabs(inherit::inherit_loss(t, s, targets, 1.0, tau).kl.item() - float(kl)), 1e-4);
}

TEST(Inherit, AlphaSchedulesAtTheirBoundaries) {
  inherit::AlphaSchedule lin{inherit::AlphaSchedule::Kind::linear, 1.0, 100};
  inherit::Alpha a(lin);
  EXPECT_DOUBLE_EQ(a.at(0), 1.0);
  EXPECT_DOUBLE_EQ(a.at(50), 0.5);
  EXPECT_NEAR(a.at(99), 0.01, 1e-12);
  EXPECT_DOUBLE_EQ(a.at(100), 0.0);
  EXPECT_DOUBLE_EQ(a.at(1000), 0.0);
  inherit::Alpha c({inherit::AlphaSchedule::Kind::constant, 0.4, 0});
  EXPECT_DOUBLE_EQ(c.at(0), 0.4);
  EXPECT_DOUBLE_EQ(c.at(123456), 0.4);
  inherit::Alpha u({inherit::AlphaSchedule::Kind::until_surpassed, 0.8, 0});
  EXPECT_DOUBLE_EQ(u.at(10), 0.8);
  EXPECT_FALSE(u.observe_validation(3.0, 2.5));  // student still worse
  EXPECT_DOUBLE_EQ(u.at(11), 0.8);
  EXPECT_FALSE(u.observe_validation(2.5, 2.5));  // equal is not surpassing
  EXPECT_TRUE(u.observe_validation(2.4, 2.5));   // switches off here
  EXPECT_DOUBLE_EQ(u.at(12), 0.0);
  EXPECT_FALSE(u.observe_validation(2.9, 2.5));  // and stays off
  EXPECT_DOUBLE_EQ(u.at(13), 0.0);
  EXPECT_THROW(inherit::AlphaSchedule::parse("cosine"), Error);
}

TEST(Inherit, BadInputs) {
  EXPECT_THROW(inherit::inherit_loss(Tensor::zeros({2, 5}), Tensor::zeros({2, 6}), Tensor::zeros({2}, DType::i64), 0.5),
               Error);
  EXPECT_THROW(inherit::inherit_loss(Tensor::zeros({2, 5}), Tensor::zeros({2, 5}), Tensor::zeros({2}, DType::i64), 1.5),
               Error);
}
