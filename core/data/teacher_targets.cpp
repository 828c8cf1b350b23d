// Sparse teacher targets from a teacher's logits: the top K, or K draws (scion/teacher_cache.h).
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numeric>

#include "scion/error.h"
#include "scion/random.h"
#include "scion/teacher_cache.h"

namespace scion::teacher_cache {

Targets make_targets(const Tensor& logits, const Layout& layout, float temperature, uint64_t seed) {
  SCION_CHECK(logits.dim() == 2 && logits.dtype() == DType::f32, "teacher cache: logits must be f32 [rows, V], got ",
              logits.desc());
  SCION_CHECK(temperature > 0.f, "teacher cache: the temperature must be > 0, got ", temperature);
  const int64_t rows = logits.size(0), V = logits.size(1), K = layout.k;
  SCION_CHECK(K >= 1 && (layout.format == Format::sample || K <= V), "teacher cache: top-k keeps k = ", K,
              " ids, which must be in [1, ", V, "] (the vocabulary)");
  SCION_CHECK(layout.format == Format::topk || K <= 65535, "teacher cache: sample draws at most 65535 tokens, k = ", K);
  const Tensor host = logits.contiguous().to(Device::cpu());
  const float* x = host.data<float>();
  Targets t;
  t.rows = rows, t.k = K;
  t.ids.assign(size_t(rows * K), 0);
  t.logp.assign(size_t(rows * K), 0.f);
  if (layout.format == Format::topk) t.log_rest.assign(size_t(rows), 0.f);
  else t.counts.assign(size_t(rows * K), 0);
  std::vector<double> logp(static_cast<size_t>(V)), cdf(static_cast<size_t>(V));
  std::vector<int32_t> order(static_cast<size_t>(V));
  for (int64_t r = 0; r < rows; ++r) {
    const float* z = x + r * V;
    double mx = -std::numeric_limits<double>::infinity();
    for (int64_t v = 0; v < V; ++v) mx = std::max(mx, double(z[v]) / temperature);
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(double(z[v]) / temperature - mx);
    const double lse = mx + std::log(sum);
    for (int64_t v = 0; v < V; ++v) logp[size_t(v)] = double(z[v]) / temperature - lse;
    int32_t* ids = t.ids.data() + r * K;
    float* lp = t.logp.data() + r * K;
    if (layout.format == Format::topk) {
      std::iota(order.begin(), order.end(), 0);
      // Most likely first; equal probabilities by id, so the cache does not depend on the sort.
      std::partial_sort(order.begin(), order.begin() + K, order.end(), [&](int32_t a, int32_t b) {
        return logp[size_t(a)] > logp[size_t(b)] || (logp[size_t(a)] == logp[size_t(b)] && a < b);
      });
      double rest = 0;
      for (int64_t j = K; j < V; ++j) rest += std::exp(logp[size_t(order[size_t(j)])]);
      for (int64_t j = 0; j < K; ++j) ids[j] = order[size_t(j)], lp[j] = float(logp[size_t(order[size_t(j)])]);
      t.log_rest[size_t(r)] = rest > 0 ? float(std::log(rest)) : -std::numeric_limits<float>::infinity();
    } else {
      double c = 0;
      for (int64_t v = 0; v < V; ++v) cdf[size_t(v)] = (c += std::exp(logp[size_t(v)]));
      std::map<int32_t, uint16_t> drawn;  // by id: the record does not depend on the draw order
      for (int64_t j = 0; j < K; ++j) {
        const double u = double(random_uniform(seed, uint64_t(r * K + j))) * c;
        int64_t v = std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin();
        v = std::min(v, V - 1);
        while (v > 0 && std::exp(logp[size_t(v)]) == 0.0) --v;  // never an id of probability 0
        ++drawn[int32_t(v)];
      }
      uint16_t* n = t.counts.data() + r * K;
      int64_t j = 0;
      for (const auto& [id, count] : drawn) ids[j] = id, n[j] = count, lp[j] = float(logp[size_t(id)]), ++j;
    }
  }
  return t;
}

}  // namespace scion::teacher_cache
