// The KL term of knowledge inheritance from a teacher cache's sparse targets (inherit.h).
#include <cmath>

#include "inherit.h"
#include "scion/ops.h"

namespace scion::inherit {

TopkRest topk_rest_from_string(const std::string& s) {
  if (s == "bucket") return TopkRest::bucket;
  if (s == "renormalize") return TopkRest::renormalize;
  throw Error("loss.inherit: unknown topk_rest '" + s + "' (expected bucket or renormalize)");
}

// Composed of existing ops (log_softmax, gather, sums), so every backend runs it as it is:
//   loss = τ²/n · Σ_rows [ C_row − Σ_k w_k · log q_k − r · log(1 − Σ_k q_k) ]
// with q the student's softmax at τ gathered at the cached ids, w the teacher's weights, r the
// teacher's mass outside the K (bucket mode only) and C_row = Σ_k w_k log w'_k + r log r the
// constant part, computed here in double.
Tensor cached_kl(const Tensor& s, const teacher_cache::Targets& c, teacher_cache::Format format, const Tensor& targets,
                 float tau, TopkRest rest, int64_t ignore_index) {
  const int64_t V = s.size(-1), N = s.numel() / V, K = c.k;
  SCION_CHECK(c.rows == N, "loss.inherit: the cache holds ", c.rows, " positions for this batch, the student's logits ",
              s.desc(), " have ", N);
  const std::vector<int64_t> tg = targets.to_vector_i64();
  SCION_CHECK(int64_t(tg.size()) == N, "loss.inherit: targets ", targets.desc(), " do not match logits ", s.desc());
  std::vector<int64_t> ids(size_t(N * K));
  std::vector<float> w(size_t(N * K), 0.f), r(size_t(N), 0.f);
  double constant = 0;
  int64_t n = 0;
  bool any_rest = false;
  for (int64_t i = 0; i < N; ++i) {
    for (int64_t j = 0; j < K; ++j) ids[size_t(i * K + j)] = c.ids[size_t(i * K + j)];
    if (tg[size_t(i)] == ignore_index) continue;
    ++n;
    const float* lp = c.logp.data() + i * K;
    float* wi = w.data() + i * K;
    if (format == teacher_cache::Format::sample) {
      double total = 0;
      for (int64_t j = 0; j < K; ++j) total += c.counts[size_t(i * K + j)];
      for (int64_t j = 0; j < K; ++j) {
        const double wj = c.counts[size_t(i * K + j)] / total;
        wi[j] = float(wj);
        if (wj > 0) constant += wj * lp[j];
      }
      continue;
    }
    double mass = 0, mx = -INFINITY;
    for (int64_t j = 0; j < K; ++j) mass += std::exp(double(lp[j])), mx = std::max(mx, double(lp[j]));
    if (rest == TopkRest::renormalize) {
      double z = 0;
      for (int64_t j = 0; j < K; ++j) z += std::exp(double(lp[j]) - mx);
      for (int64_t j = 0; j < K; ++j) {
        const double lw = double(lp[j]) - mx - std::log(z);
        wi[j] = float(std::exp(lw));
        constant += std::exp(lw) * lw;
      }
      continue;
    }
    for (int64_t j = 0; j < K; ++j) wi[j] = float(std::exp(double(lp[j]))), constant += std::exp(double(lp[j])) * lp[j];
    const double lr = c.log_rest[size_t(i)];
    if (std::isfinite(lr)) {
      r[size_t(i)] = float(std::exp(lr));
      constant += std::exp(lr) * lr;
      any_rest = true;
    }
  }
  SCION_CHECK(n > 0, "loss.inherit: no position of this batch has a target");
  const Device dev = s.device();
  Tensor flat = s.reshape({N, V});
  Tensor logq = ops::log_softmax(ops::mul_scalar(flat, 1.f / tau), -1);
  Tensor at = ops::gather(logq, 1, Tensor::from_vector_i64(ids, {N, K}).to(dev));
  Tensor weighted = ops::sum_all(ops::mul(at, Tensor::from_vector(w, {N, K}).to(dev)));
  Tensor loss = ops::add_scalar(ops::neg(weighted), float(constant));
  if (any_rest) {
    // log(1 − Σ_K q_k), kept finite where the K hold (almost) all the student's mass.
    Tensor inside = ops::sum(ops::exp(at), {1}, false);
    Tensor outside = ops::log(ops::clamp(ops::add_scalar(ops::neg(inside), 1.f), 1e-30f, 1.f));
    loss = ops::sub(loss, ops::sum_all(ops::mul(outside, Tensor::from_vector(r, {N}).to(dev))));
  }
  return ops::mul_scalar(loss, tau * tau / float(n));
}

}  // namespace scion::inherit
