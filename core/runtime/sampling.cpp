#include "runtime/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "scion/random.h"

namespace scion::runtime {

std::vector<int32_t> sample(Model& model, std::vector<int32_t> seq, const SampleOptions& o) {
  SCION_CHECK(!seq.empty(), "generate: the prompt is empty (it needs at least one token)");
  SCION_CHECK(o.temperature >= 0, "generate: temperature must be >= 0, got ", o.temperature);
  NoGradGuard ng;
  model.module().set_training(false);
  StepContext ctx;
  ctx.training = false;
  for (int64_t n = 0; n < o.max_tokens; ++n) {
    const int64_t start = std::max<int64_t>(0, int64_t(seq.size()) - o.context);
    std::vector<int64_t> window(seq.begin() + start, seq.end());
    const int64_t T = int64_t(window.size());
    Tensor logits = model.forward({{"tokens", Tensor::from_vector_i64(window, {1, T})}}, ctx).at("logits");
    std::vector<float> last = logits.narrow(1, T - 1, 1).to_vector();
    const int64_t V = int64_t(last.size());
    int32_t next;
    if (o.temperature == 0) {
      next = int32_t(std::max_element(last.begin(), last.end()) - last.begin());
    } else {
      std::vector<int32_t> idx(static_cast<size_t>(V));
      std::iota(idx.begin(), idx.end(), 0);
      const int64_t k = o.top_k > 0 ? std::min(o.top_k, V) : V;
      std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                        [&](int32_t a, int32_t b) { return last[size_t(a)] > last[size_t(b)]; });
      const double mx = last[size_t(idx[0])];
      std::vector<double> p(static_cast<size_t>(k));
      double z = 0;
      for (int64_t i = 0; i < k; ++i) z += (p[size_t(i)] = std::exp((last[size_t(idx[size_t(i)])] - mx) / o.temperature));
      double u = double(random_uniform(o.seed, uint64_t(n))) * z;
      next = idx[size_t(k - 1)];
      for (int64_t i = 0; i < k; ++i)
        if ((u -= p[size_t(i)]) <= 0) {
          next = idx[size_t(i)];
          break;
        }
    }
    seq.push_back(next);
    if (next == o.stop_id) break;
  }
  return seq;
}

}  // namespace scion::runtime
