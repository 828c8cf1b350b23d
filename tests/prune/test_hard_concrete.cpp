// Hard-concrete gates: samples have the distribution's mean and P(z != 0); gradients through
// the samples, the keep probabilities, the expected sparsity, the trained hidden-dimension
// LayerNorm and the layer transformation match finite differences.
#include <gtest/gtest.h>

#include <cmath>

#include "cofi_masks.h"
#include "hard_concrete.h"
#include "layer_match.h"
#include "scion/autograd.h"
#include "scion/ops.h"

using namespace scion;
using prune::HardConcrete;

namespace {

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// E[z] and P(z != 0) by quadrature over u (the distribution's definition, not the code's).
void reference_moments(double log_alpha, double& mean, double& nonzero) {
  const int n = 200000;
  double m = 0, nz = 0;
  for (int i = 0; i < n; ++i) {
    const double u = (i + 0.5) / n;
    const double s = sigmoid((std::log(u) - std::log(1 - u) + log_alpha) / (2.0 / 3.0));
    const double z = std::clamp(s * 1.2 - 0.1, 0.0, 1.0);
    m += z, nz += z > 0;
  }
  mean = m / n, nonzero = nz / n;
}

// Central differences of scalar f at every element of x.
std::vector<double> numeric_grad(const std::function<double(const Tensor&)>& f, const Tensor& x, float h = 1e-2f) {
  NoGradGuard ng;
  std::vector<double> g;
  std::vector<float> v = x.detach().to_vector();
  for (size_t i = 0; i < v.size(); ++i) {
    auto at = [&](float d) {
      std::vector<float> w = v;
      w[i] += d;
      return f(Tensor::from_vector(w, x.shape()));
    };
    g.push_back((at(h) - at(-h)) / (2 * h));
  }
  return g;
}

}  // namespace

TEST(HardConcrete, SamplesHaveTheExpectedMeanAndNonzeroProbability) {
  for (float la : {-2.f, 0.f, 1.5f, 4.f}) {
    Tensor l = Tensor::full({40000}, la);
    const std::vector<float> z = HardConcrete::sample(l, 99).to_vector();
    double mean = 0, nz = 0;
    for (float v : z) {
      ASSERT_GE(v, 0.f);
      ASSERT_LE(v, 1.f);
      mean += v, nz += v != 0.f;
    }
    mean /= double(z.size()), nz /= double(z.size());
    double want_mean, want_nz;
    reference_moments(la, want_mean, want_nz);
    // 40000 draws: the standard error of a fraction is at most 0.0025.
    EXPECT_NEAR(mean, want_mean, 0.01) << "log alpha " << la;
    EXPECT_NEAR(nz, want_nz, 0.01) << "log alpha " << la;
    EXPECT_NEAR(HardConcrete::keep_prob(Tensor::full({1}, la)).item(), want_nz, 1e-3) << "closed form";
  }
}

TEST(HardConcrete, OneSamplePerSeedAndElementAndDeterministicMasksKeepTheExpectedCount) {
  Tensor l = Tensor::randn({64}, 3, 0.f, 2.f);
  EXPECT_EQ(HardConcrete::sample(l, 5).to_vector(), HardConcrete::sample(l, 5).to_vector());
  EXPECT_NE(HardConcrete::sample(l, 5).to_vector(), HardConcrete::sample(l, 6).to_vector());
  const std::vector<float> p = HardConcrete::keep_prob(l).to_vector();
  double expected = 0;
  for (float v : p) expected += v;
  const std::vector<float> d = HardConcrete::deterministic(l).to_vector();
  const std::vector<float> la = l.to_vector();
  int64_t kept = 0;
  float smallest_kept = 2, largest_dropped = -1;
  for (size_t i = 0; i < d.size(); ++i) {
    const float soft = float(sigmoid(la[i] / (2.0 / 3.0) * 0.8));
    if (d[i] != 0.f) {
      ++kept;
      EXPECT_NEAR(d[i], soft, 1e-6) << "survivors keep their soft value";
      smallest_kept = std::min(smallest_kept, soft);
    } else {
      largest_dropped = std::max(largest_dropped, soft);
    }
  }
  EXPECT_EQ(kept, std::llround(expected));
  EXPECT_LE(largest_dropped, smallest_kept) << "the smallest soft values are the ones zeroed";
}

TEST(HardConcrete, ClampKeepsLogAlphaInItsRange) {
  Tensor l = Tensor::from_vector({-9.f, 0.5f, 10.f}, {3});
  HardConcrete::clamp_(l);
  const auto v = l.to_vector();
  EXPECT_NEAR(v[0], std::log(0.01f), 1e-5);
  EXPECT_EQ(v[1], 0.5f);
  EXPECT_NEAR(v[2], std::log(100.f), 1e-5);
}

TEST(HardConcrete, FiniteDifferenceGradientsOfSamplesAndKeepProbabilities) {
  // Values whose samples lie inside (0, 1), where z is differentiable.
  Tensor l = Tensor::from_vector({-0.3f, 0.2f, 0.8f, 1.1f}, {4});
  Tensor w = Tensor::from_vector({0.5f, -1.f, 2.f, 0.3f}, {4});
  for (int which = 0; which < 2; ++which) {
    auto f = [&](const Tensor& x) {
      Tensor y = which == 0 ? HardConcrete::sample(x, 17) : HardConcrete::keep_prob(x);
      return ops::sum_all(ops::mul(y, w));
    };
    Tensor x = l.clone();
    x.set_requires_grad(true);
    f(x).backward();
    const auto got = x.grad().to_vector();
    const auto want = numeric_grad([&](const Tensor& t) { return double(f(t).item()); }, l, 1e-3f);
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 2e-3) << which << " at " << i;
  }
}

TEST(HardConcrete, FiniteDifferenceGradientOfTheExpectedSparsity) {
  Architecture a;
  a.family = "gpt2", a.vocab = 10, a.context = 4, a.width = 6, a.head_size = 2;
  a.heads = {3, 3}, a.ffn = {5, 5};
  prune::MaskInit init;
  init.log_alpha = 0.5f, init.ffn_unit_log_alpha = -0.2f, init.std = 1.f, init.seed = 4;
  prune::CofiMasks masks(a, init);
  // The reference's prunable_model_size: per layer (4d² + 4d) + (2dF + 5d), biases included.
  EXPECT_EQ(masks.dense_params(), 2 * ((4.0 * 6 * 6 + 4 * 6) + (2.0 * 6 * 5 + 5 * 6)));
  {
    // At full masks the reference's expected count leaves out the FFN's 5d: ŝ = 5dL / N₀.
    prune::MaskInit on;
    on.log_alpha = 100.f, on.ffn_unit_log_alpha = 100.f, on.std = 0.f;
    prune::CofiMasks full(a, on);
    EXPECT_NEAR(full.expected_params().item(), 2 * ((4.0 * 6 * 6 + 4 * 6) + 2.0 * 6 * 5), 1e-3);
    EXPECT_NEAR(full.expected_sparsity().item(), 2 * 5.0 * 6 / full.dense_params(), 1e-6);
  }
  masks.expected_sparsity().backward();
  for (auto& [name, t] : masks.log_alphas()) {
    const auto got = t.grad().to_vector();
    const auto want = numeric_grad(
        [&](const Tensor& v) {
          NoGradGuard ng;
          Tensor saved = t.detach().clone();
          Tensor tt = t;
          tt.copy_(v);
          const double s = masks.expected_sparsity().item();
          tt.copy_(saved);
          return s;
        },
        t, 1e-2f);
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-4) << name << "[" << i << "]";
  }
}

TEST(HardConcrete, FiniteDifferenceGradientOfATrainedHiddenMaskInTheLayerNorm) {
  Tensor x = Tensor::randn({3, 5}, 8), w = Tensor::rand({5}, 9, 0.5f, 1.5f), b = Tensor::randn({5}, 10);
  Tensor mask = Tensor::from_vector({0.9f, 0.3f, 1.f, 0.6f, 0.05f}, {5});
  Tensor r = Tensor::randn({3, 5}, 11);
  auto f = [&](const Tensor& m) { return ops::sum_all(ops::mul(ops::layernorm_masked(x, w, b, m, 1e-5f), r)); };
  Tensor m = mask.clone();
  m.set_requires_grad(true);
  f(m).backward();
  const auto got = m.grad().to_vector();
  const auto want = numeric_grad([&](const Tensor& t) { return double(f(t).item()); }, mask, 1e-3f);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 3e-3) << i;
  // The same function as with a constant mask.
  NoGradGuard ng;
  EXPECT_NEAR(f(mask).item(), f(mask.detach()).item(), 1e-6);
}

TEST(HardConcrete, FiniteDifferenceGradientOfATrainedHiddenMaskInTheKeptLayerNorm) {
  // CoFi's rule: the stream is mask ⊙ x and the LayerNorm's output is multiplied by the mask
  // again; the gradient reaches the mask through both. Which dimensions are kept (mask ≠ 0) is
  // discrete, so the difference is taken at the nonzero entries only.
  Tensor x = Tensor::randn({3, 5}, 12), w = Tensor::rand({5}, 13, 0.5f, 1.5f), b = Tensor::randn({5}, 14);
  Tensor mask = Tensor::from_vector({0.9f, 0.3f, 0.f, 0.6f, 0.05f}, {5});
  Tensor r = Tensor::randn({3, 5}, 15);
  auto f = [&](const Tensor& m) {
    return ops::sum_all(ops::mul(ops::layernorm_kept(ops::mul(x, m), w, b, m, 1e-5f), r));
  };
  Tensor m = mask.clone();
  m.set_requires_grad(true);
  f(m).backward();
  const auto got = m.grad().to_vector();
  const auto want = numeric_grad([&](const Tensor& t) { return double(f(t).item()); }, mask, 1e-3f);
  for (size_t i = 0; i < got.size(); ++i)
    if (i != 2) {
      EXPECT_NEAR(got[i], want[i], 3e-3) << i;
    }
  EXPECT_GT(std::fabs(got[0]) + std::fabs(got[3]), 1e-3) << "the mask gets a gradient";
}

TEST(LayerMatch, TopDownBelowThePreviousMatchAmongExistingLayers) {
  // Teacher layers are copies of student layers 0, 2 and 3 (plus noise), so the closest match
  // of each is known; student layer 3 is gone, so teacher layer 2 takes the next best below.
  Tensor s = Tensor::randn({4, 2, 3, 5}, 21);
  std::vector<Tensor> t;
  for (int64_t l : {0, 2, 3}) t.push_back(ops::add(s.narrow(0, l, 1), Tensor::randn({1, 2, 3, 5}, 30 + l, 0.f, 0.01f)));
  Tensor teacher = ops::concat(t, 0);
  auto m = prune::match_layers(s, teacher, {0, 1, 2}, {true, true, true, true});
  EXPECT_EQ(m.student, (std::vector<int64_t>{0, 2, 3}));
  m = prune::match_layers(s, teacher, {0, 1, 2}, {true, true, true, false});
  EXPECT_LT(m.student[2], 3);
  EXPECT_LT(m.student[1], m.student[2]) << "strictly below the previous match";
  // Strictly below, or with nothing left below, the previous match again (the reference).
  EXPECT_TRUE(m.student[0] < m.student[1] || (m.student[0] == m.student[1] && m.student[1] == 0));
  // Only layer 0 left: the top teacher layer takes it; the others find nothing below and, as
  // in the reference, are matched to that previous match again, each adding its MSE.
  m = prune::match_layers(s, teacher, {0, 1, 2}, {true, false, false, false});
  EXPECT_EQ(m.student, (std::vector<int64_t>{0, 0, 0}));
  double want = 0;
  for (int64_t k = 0; k < 3; ++k) want += ops::mse(s.narrow(0, 0, 1), teacher.narrow(0, k, 1)).item();
  EXPECT_NEAR(m.loss.item(), want, 1e-6 * want);
  // The top-down rule runs out early too: teacher layer 2 (a copy of student 0) takes 0, so
  // teacher layers 0 and 1 re-match 0 although other student layers exist above it.
  Tensor t0 = ops::concat({teacher.narrow(0, 1, 1), teacher.narrow(0, 2, 1), teacher.narrow(0, 0, 1)}, 0);
  m = prune::match_layers(s, t0, {0, 1, 2}, {true, true, true, true});
  EXPECT_EQ(m.student, (std::vector<int64_t>{0, 0, 0}));
  EXPECT_THROW(prune::match_layers(s, teacher, {3}, {true, true, true, true}), Error);
}

TEST(LayerMatch, FiniteDifferenceGradientThroughTheLayerTransformation) {
  Tensor s = Tensor::randn({3, 2, 2, 4}, 41), teacher = Tensor::randn({3, 2, 2, 4}, 42);
  Tensor w0 = ops::add(Tensor::from_vector({1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}, {4, 4}),
                       Tensor::randn({4, 4}, 43, 0.f, 0.1f));
  Tensor bias = Tensor::randn({4}, 44, 0.f, 0.1f);
  // The matching is fixed where the gradient is taken (argmin is piecewise constant).
  const auto pick = prune::match_layers(ops::linear(s, w0, bias, false), teacher, {1, 2}, {true, true, true}).student;
  auto f = [&](const Tensor& w) {
    auto m = prune::match_layers(ops::linear(s, w, bias, false), teacher, {1, 2}, {true, true, true});
    EXPECT_EQ(m.student, pick);
    return m.loss;
  };
  Tensor w = w0.clone();
  w.set_requires_grad(true);
  f(w).backward();
  const auto got = w.grad().to_vector();
  const auto want = numeric_grad([&](const Tensor& t) { return double(f(t).item()); }, w0, 1e-3f);
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 2e-3) << i;
}
