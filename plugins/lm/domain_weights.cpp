#include "domain_weights.h"

#include <algorithm>
#include <cmath>

#include "scion/error.h"
#include "scion/random.h"

namespace scion::lm {

std::vector<double> update_domain_weights(const std::vector<double>& w, const std::vector<double>& loss,
                                          const std::vector<double>& reference, const DynamicLoading& o) {
  SCION_CHECK(w.size() == loss.size() && w.size() == reference.size() && !w.empty(),
              "dynamic batch loading: weights, losses and references differ in length");
  // In log space (a softmax of ln w + η·Δ), so weights near zero neither underflow nor lose
  // the excess that would bring them back.
  std::vector<double> a(w.size());
  for (size_t i = 0; i < w.size(); ++i) {
    const double excess = o.clip ? std::max(loss[i] - reference[i], 0.0) : loss[i] - reference[i];
    a[i] = std::log(w[i]) + o.eta * excess;
  }
  const double top = *std::max_element(a.begin(), a.end());
  double sum = 0;
  for (double& x : a) sum += (x = std::exp(x - top));
  const double k = double(w.size());
  for (double& x : a) x = (1 - o.smoothing) * (x / sum) + o.smoothing / k;
  return a;
}

int64_t draw_domain(const std::vector<double>& w, uint64_t seed, uint64_t index) {
  const double u = double(random_uniform(seed, index));
  double acc = 0;
  for (size_t i = 0; i < w.size(); ++i)
    if (u < (acc += w[i])) return int64_t(i);
  return int64_t(w.size()) - 1;  // rounding: the last domain takes what is left
}

}  // namespace scion::lm
