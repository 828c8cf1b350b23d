#include "generate.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "scion/autograd.h"
#include "scion/random.h"

namespace scion::lm {

std::vector<int32_t> generate(const GptModel& model, std::vector<int32_t> seq, const SampleConfig& cfg) {
  SCION_CHECK(!seq.empty(), "generate: the prompt is empty (it needs at least one token)");
  SCION_CHECK(cfg.temperature >= 0.f, "generate: temperature must be >= 0, got ", cfg.temperature);
  NoGradGuard no_grad;
  const int64_t ctx = model.config().context, V = model.config().vocab;
  for (int64_t n = 0; n < cfg.max_tokens; ++n) {
    const int64_t start = std::max<int64_t>(0, int64_t(seq.size()) - ctx);
    std::vector<int64_t> window(seq.begin() + start, seq.end());
    const int64_t T = int64_t(window.size());
    Tensor logits = model.forward(Tensor::from_vector_i64(window, {1, T}));
    std::vector<float> last = logits.narrow(1, T - 1, 1).to_vector();
    int32_t next = 0;
    if (cfg.temperature == 0.f) {
      next = int32_t(std::max_element(last.begin(), last.end()) - last.begin());
    } else {
      std::vector<int32_t> idx(static_cast<size_t>(V));
      std::iota(idx.begin(), idx.end(), 0);
      int64_t k = cfg.top_k > 0 ? std::min(cfg.top_k, V) : V;
      std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) { return last[size_t(a)] > last[size_t(b)]; });
      const float mx = last[size_t(idx[0])];
      std::vector<double> p(static_cast<size_t>(k));
      double z = 0;
      for (int64_t i = 0; i < k; ++i) z += (p[size_t(i)] = std::exp((last[size_t(idx[size_t(i)])] - mx) / cfg.temperature));
      double u = double(random_uniform(cfg.seed, uint64_t(n))) * z;
      next = idx[size_t(k - 1)];
      for (int64_t i = 0; i < k; ++i) {
        u -= p[size_t(i)];
        if (u <= 0) {
          next = idx[size_t(i)];
          break;
        }
      }
    }
    seq.push_back(next);
    if (next == cfg.stop_id) break;
  }
  return seq;
}

}  // namespace scion::lm
