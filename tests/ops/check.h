// Helpers for the op tests: tolerant comparison against double references, and central
// finite-difference gradient checks.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <vector>

#include "scion/ops.h"

namespace scion::test {

inline Tensor rnd(const Shape& s, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  return Tensor::rand(s, seed, lo, hi);
}

// |actual - expected| <= atol + rtol * |expected| everywhere; reports the worst element.
inline void expect_close(const Tensor& actual, const std::vector<double>& expected, double atol = 1e-5,
                         double rtol = 1e-4, const std::string& what = "") {
  std::vector<float> a = actual.to_vector();
  ASSERT_EQ(a.size(), expected.size()) << what;
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double excess = std::fabs(double(a[i]) - expected[i]) - (atol + rtol * std::fabs(expected[i]));
    if (excess > worst) worst = excess, at = i;
  }
  EXPECT_LE(worst, 0.0) << what << ": element " << at << " is " << a[at] << ", expected " << expected[at];
}

// Checks d(sum(f(inputs) * w))/d(input) for every floating input that requires grad against
// central differences, in double for the loss. Up to `samples` elements per input.
inline void gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f, std::vector<Tensor> inputs,
                      const std::string& what, double eps = 1e-2, double atol = 2e-3, double rtol = 2e-2,
                      int samples = 48) {
  for (auto& t : inputs)
    if (is_floating(t.dtype())) t = t.detach().clone().set_requires_grad(true);
  Tensor out = f(inputs);
  const Tensor w = Tensor::rand(out.shape(), 991, -1.f, 1.f);
  const std::vector<float> wv = w.to_vector();
  auto loss_of = [&](const Tensor& o) {
    const std::vector<float> ov = o.to_vector();
    double s = 0;
    for (size_t i = 0; i < ov.size(); ++i) s += double(ov[i]) * wv[i];
    return s;
  };
  ops::sum_all(ops::mul(out, w)).backward();
  for (size_t k = 0; k < inputs.size(); ++k) {
    Tensor& x = inputs[k];
    if (!x.requires_grad()) continue;
    ASSERT_TRUE(x.grad().defined()) << what << ": input " << k << " got no gradient";
    const std::vector<float> g = x.grad().to_vector();
    const int64_t n = x.numel();
    const int64_t step = std::max<int64_t>(1, n / samples);
    for (int64_t i = 0; i < n; i += step) {
      NoGradGuard ng;
      float* p = x.data<float>() + i;  // inputs are contiguous clones
      const float orig = *p;
      *p = orig + float(eps);
      const double up = loss_of(f(inputs));
      *p = orig - float(eps);
      const double down = loss_of(f(inputs));
      *p = orig;
      const double num = (up - down) / (2 * eps);
      EXPECT_NEAR(g[size_t(i)], num, atol + rtol * std::fabs(num))
          << what << ": input " << k << " element " << i << " analytic " << g[size_t(i)] << " numeric " << num;
    }
  }
}

}  // namespace scion::test
