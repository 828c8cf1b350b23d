#include "knnlm.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "log_space.h"
#include "scion/error.h"

namespace scion::memory {

namespace {
constexpr double kNegInf = kLogZero<double>;

double dot(const float* a, const float* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(a[i]) * double(b[i]);
  return s;
}
}  // namespace

double knn_log_prob(const float* sims, const int32_t* values, int64_t k, int64_t target, double temperature) {
  SCION_CHECK(temperature > 0, "kNN-LM: the temperature must be > 0, got ", temperature);
  double m = kNegInf;
  for (int64_t i = 0; i < k; ++i)
    if (values[i] >= 0) m = std::max(m, double(sims[i]) / temperature);
  if (m == kNegInf) return kNegInf;
  double all = 0, hit = 0;
  for (int64_t i = 0; i < k; ++i) {
    if (values[i] < 0) continue;
    const double e = std::exp(double(sims[i]) / temperature - m);
    all += e;
    if (values[i] == target) hit += e;
  }
  return hit > 0 ? std::log(hit / all) : kNegInf;
}

double interpolate(double model_logp, double knn_logp, double lambda) {
  SCION_CHECK(lambda >= 0 && lambda <= 1, "kNN-LM: lambda must be in [0, 1], got ", lambda);
  if (lambda == 0) return model_logp;
  if (lambda == 1) return knn_logp;
  return log_add(std::log1p(-lambda) + model_logp, knn_logp == kNegInf ? kNegInf : std::log(lambda) + knn_logp);
}

MemoryScorer::MemoryScorer(EvalMemory mode, int64_t mem_size, float temperature, bool same_document)
    : mode_(mode), mem_size_(mem_size), temperature_(temperature), same_document_(same_document) {
  SCION_CHECK(temperature > 0, "eval.knnlm: the memory temperature must be > 0, got ", temperature);
  SCION_CHECK(mem_size >= 0, "eval.knnlm: mem_size must be >= 0, got ", mem_size);
}

std::vector<double> MemoryScorer::score_window(const float* logits, const float* reps, const int64_t* targets,
                                               const int64_t* docs, int64_t T, int64_t V, int64_t C,
                                               int64_t first_scored) {
  std::vector<double> out(size_t(T), 0.0);
  const double scale = 1.0 / (std::sqrt(double(C)) * double(temperature_));
  for (int64_t t = std::max<int64_t>(first_scored, 0); t < T; ++t) {
    const int64_t y = targets[t];
    if (y < 0) continue;
    SCION_CHECK(y < V, "eval.knnlm: target ", y, " outside the vocabulary of ", V);
    const float* row = logits + t * V;
    double mx = row[0];
    for (int64_t v = 1; v < V; ++v) mx = std::max(mx, double(row[v]));
    double z = 0;
    for (int64_t v = 0; v < V; ++v) z += std::exp(double(row[v]) - mx);
    double den = mx + std::log(z), num = double(row[y]);
    if (mode_ != EvalMemory::none) {
      const float* q = reps + t * C;
      auto take = [&](const float* key, int64_t label) {
        const double s = dot(q, key, C) * scale;
        den = log_add(den, s);
        if (label == y) num = log_add(num, s);
      };
      for (int64_t j = 0; j < t; ++j)
        if (targets[j] >= 0) take(reps + j * C, targets[j]);
      if (mode_ == EvalMemory::long_)
        for (const Entry& e : fifo_)
          if (!same_document_ || e.doc == docs[t]) take(e.key.data(), e.label);
    }
    out[size_t(t)] = num - den;
  }
  if (mode_ == EvalMemory::long_ && mem_size_ > 0) {
    for (int64_t t = std::max<int64_t>(first_scored, 0); t < T; ++t)
      if (targets[t] >= 0) fifo_.push_back({std::vector<float>(reps + t * C, reps + (t + 1) * C), targets[t], docs[t]});
    while (int64_t(fifo_.size()) > mem_size_) fifo_.pop_front();
  }
  return out;
}

}  // namespace scion::memory
