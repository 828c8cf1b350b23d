// Helpers for the op tests: seeded random tensors, double-precision comparison that reports
// the worst element, N-d index arithmetic for hand-written references, and a finite-difference
// gradient checker.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "scion/autograd.h"
#include "scion/ops.h"
#include "scion/random.h"
#include "scion/tensor.h"

namespace scion::test {

using DVec = std::vector<double>;

// ---- random inputs --------------------------------------------------------------------------
inline Tensor randn(const Shape& s, uint64_t seed, float std = 1.f) { return Tensor::randn(s, seed, 0.f, std); }
inline Tensor uniform(const Shape& s, uint64_t seed, float lo, float hi) { return Tensor::rand(s, seed, lo, hi); }

// Values in [lo, hi] with |x - k| >= margin for every kink k (relu at 0, clamp bounds, ...), so
// a finite difference never straddles a kink.
inline Tensor away_from_kinks(const Shape& s, uint64_t seed, float lo, float hi, std::vector<float> kinks,
                              float margin) {
  Tensor t = Tensor::rand(s, seed, lo, hi);
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i)
    for (float k : kinks)
      if (std::fabs(p[i] - k) < margin) p[i] = p[i] >= k ? k + margin + 0.01f : k - margin - 0.01f;
  return t;
}

// Integer tensor (i64) with values in [lo, hi).
inline Tensor ids(const Shape& s, uint64_t seed, int64_t lo, int64_t hi, DType dt = DType::i64) {
  return Tensor::randint(s, seed, lo, hi, dt);
}

// u8 tensor from a predicate of the flat index.
inline Tensor mask_u8(const Shape& s, const std::function<bool(int64_t)>& on) {
  Tensor m = Tensor::zeros(s, DType::u8);
  uint8_t* p = m.data<uint8_t>();
  for (int64_t i = 0; i < m.numel(); ++i) p[i] = on(i) ? 1 : 0;
  return m;
}

inline DVec to_double(const Tensor& t) {
  const std::vector<float> v = t.to_vector();
  return DVec(v.begin(), v.end());
}

// ---- index arithmetic for references -------------------------------------------------------
inline std::vector<int64_t> unravel(int64_t flat, const Shape& s) {
  std::vector<int64_t> idx(s.size());
  for (size_t d = s.size(); d-- > 0;) {
    idx[d] = s[d] ? flat % s[d] : 0;
    flat = s[d] ? flat / s[d] : 0;
  }
  return idx;
}
inline int64_t ravel(const std::vector<int64_t>& idx, const Shape& s) {
  int64_t f = 0;
  for (size_t d = 0; d < s.size(); ++d) f = f * s[d] + idx[d];
  return f;
}
// Flat index into `s` of the element that broadcasting maps output index `out_idx` to.
inline int64_t broadcast_index(const std::vector<int64_t>& out_idx, const Shape& s) {
  const size_t off = out_idx.size() - s.size();
  int64_t f = 0;
  for (size_t d = 0; d < s.size(); ++d) f = f * s[d] + (s[d] == 1 ? 0 : out_idx[off + d]);
  return f;
}
inline Shape broadcast_shape(const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// ---- comparison ------------------------------------------------------------------------------
// Checks |actual - expected| <= atol + rtol * |expected| elementwise (NaN must match NaN, inf
// must match inf). On failure reports the number of bad elements and the worst one with its
// flat and N-d index.
inline ::testing::AssertionResult close(const Tensor& actual, const DVec& expected, double atol, double rtol) {
  if (!actual.defined()) return ::testing::AssertionFailure() << "actual tensor is undefined";
  if (actual.numel() != int64_t(expected.size()))
    return ::testing::AssertionFailure() << "actual " << actual.desc() << " has " << actual.numel()
                                         << " elements, expected " << expected.size();
  const std::vector<float> a = actual.to_vector();
  int64_t bad = 0, worst = -1;
  double worst_excess = -1;
  for (size_t i = 0; i < a.size(); ++i) {
    const double x = a[i], e = expected[i];
    bool ok;
    double excess;
    if (std::isnan(e) || std::isnan(x)) {
      ok = std::isnan(e) && std::isnan(x);
      excess = ok ? 0 : INFINITY;
    } else if (std::isinf(e) || std::isinf(x)) {
      ok = x == e;
      excess = ok ? 0 : INFINITY;
    } else {
      const double err = std::fabs(x - e), tol = atol + rtol * std::fabs(e);
      ok = err <= tol;
      excess = err / tol;
    }
    if (!ok) ++bad;
    if (excess > worst_excess) {
      worst_excess = excess;
      worst = int64_t(i);
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  std::ostringstream os;
  os << bad << " of " << a.size() << " elements of " << actual.desc() << " differ (atol " << atol << ", rtol "
     << rtol << "); worst at flat index " << worst << " [";
  const auto idx = unravel(worst, actual.shape());
  for (size_t d = 0; d < idx.size(); ++d) os << (d ? ", " : "") << idx[d];
  os << "]: got " << a[size_t(worst)] << ", expected " << expected[size_t(worst)];
  return ::testing::AssertionFailure() << os.str();
}

inline bool expect_close(const Tensor& actual, const DVec& expected, double atol = 1e-5, double rtol = 1e-5,
                         const std::string& what = "") {
  auto r = close(actual, expected, atol, rtol);
  EXPECT_TRUE(r) << what;
  return bool(r);
}

#define SCION_EXPECT_CLOSE(actual, expected, atol, rtol) \
  EXPECT_TRUE(::scion::test::close((actual), (expected), (atol), (rtol)))

inline bool same_bits(const Tensor& a, const Tensor& b) {
  if (a.shape() != b.shape() || a.dtype() != b.dtype()) return false;
  Tensor ac = a.contiguous(), bc = b.contiguous();
  return std::memcmp(ac.raw_data(), bc.raw_data(), ac.nbytes()) == 0;
}

// ---- gradient check ---------------------------------------------------------------------------
struct GradcheckOptions {
  double eps = 1e-2;     // central difference step (f32 inputs)
  double atol = 2e-3;    // |analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|)
  double rtol = 2e-2;
  int max_samples = 64;  // elements perturbed per input (evenly spread, first and last included)
  uint64_t weight_seed = 0x5eed;
};

using MultiFn = std::function<std::vector<Tensor>(const std::vector<Tensor>&)>;
using SingleFn = std::function<Tensor(const std::vector<Tensor>&)>;

// Loss = sum_k sum_i out_k[i] * w_k[i] with fixed random weights w, evaluated in double. The
// analytic gradient comes from backward(seed = w_k) on each output (leaf gradients accumulate);
// the numeric one from central differences on up to max_samples elements of each input.
// Every input must be a contiguous f32 leaf; gradcheck makes it require grad.
inline ::testing::AssertionResult gradcheck(const MultiFn& fn, std::vector<Tensor> inputs,
                                            const GradcheckOptions& o = {}) {
  for (Tensor& t : inputs) {
    if (t.dtype() != DType::f32 || !t.is_contiguous())
      return ::testing::AssertionFailure() << "gradcheck inputs must be contiguous f32, got " << t.desc();
    t.zero_grad();
    t.set_requires_grad(true);
  }
  std::vector<Tensor> outs = fn(inputs);
  std::vector<Tensor> weights;
  for (size_t k = 0; k < outs.size(); ++k)
    weights.push_back(Tensor::randn(outs[k].shape(), o.weight_seed + 977 * k));
  for (size_t k = 0; k < outs.size(); ++k) {
    if (!outs[k].requires_grad()) continue;  // an output no input reaches contributes nothing
    outs[k].backward(weights[k], /*retain_graph=*/k + 1 < outs.size());
  }
  outs.clear();

  auto loss = [&]() {
    NoGradGuard ng;
    std::vector<Tensor> ys = fn(inputs);
    double s = 0;
    for (size_t k = 0; k < ys.size(); ++k) {
      const std::vector<float> y = ys[k].to_vector(), w = weights[k].to_vector();
      for (size_t i = 0; i < y.size(); ++i) s += double(y[i]) * double(w[i]);
    }
    return s;
  };

  std::ostringstream fails;
  bool ok = true;
  for (size_t in = 0; in < inputs.size(); ++in) {
    Tensor& x = inputs[in];
    const int64_t n = x.numel();
    Tensor g = x.grad();
    std::vector<float> ga = g.defined() ? g.to_vector() : std::vector<float>(size_t(n), 0.f);
    if (!g.defined()) {
      fails << "input " << in << " " << x.desc() << ": no gradient reached it\n";
      ok = false;
      continue;
    }
    const int64_t samples = std::min<int64_t>(n, o.max_samples);
    double worst = -1;
    int64_t worst_i = -1, bad = 0;
    double worst_a = 0, worst_n = 0;
    float* p = x.data<float>();
    for (int64_t s = 0; s < samples; ++s) {
      const int64_t i = samples == 1 ? 0 : (s * (n - 1)) / (samples - 1);
      const float orig = p[i];
      p[i] = float(orig + o.eps);
      const double lp = loss();
      p[i] = float(orig - o.eps);
      const double lm = loss();
      p[i] = orig;
      const double num = (lp - lm) / (2 * o.eps);
      const double ana = ga[size_t(i)];
      const double err = std::fabs(num - ana), tol = o.atol + o.rtol * std::max(std::fabs(num), std::fabs(ana));
      if (!(err <= tol)) ++bad;
      const double r = err / tol;
      if (r > worst || std::isnan(r)) {
        worst = r;
        worst_i = i;
        worst_a = ana;
        worst_n = num;
      }
    }
    if (bad) {
      ok = false;
      fails << "input " << in << " " << x.desc() << ": " << bad << " of " << samples
            << " sampled elements differ; worst at " << worst_i << ": analytic " << worst_a << ", numeric "
            << worst_n << "\n";
    }
  }
  for (Tensor& t : inputs) t.zero_grad();
  if (ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << fails.str();
}

inline ::testing::AssertionResult gradcheck(const SingleFn& fn, std::vector<Tensor> inputs,
                                            const GradcheckOptions& o = {}) {
  return gradcheck(MultiFn([&](const std::vector<Tensor>& xs) { return std::vector<Tensor>{fn(xs)}; }),
                   std::move(inputs), o);
}

// Runs `f` and returns the message of the scion::Error it throws ("" with a failure if it
// throws nothing or something else).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "threw a non-scion exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "did not throw";
  return "";
}

}  // namespace scion::test
