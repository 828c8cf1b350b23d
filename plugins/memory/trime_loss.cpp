#include "trime_loss.h"

#include <cblas.h>

#include <cmath>
#include <limits>
#include <memory>

#include "scion/autograd.h"
#include "log_space.h"
#include "scion/error.h"

namespace scion::memory {

namespace {
constexpr float kNegInf = kLogZero<float>;

// The keys a tile of queries (segment r, columns [c0, c1)) can have in memory: [k0, k1).
std::pair<int64_t, int64_t> key_range(const MemorySpec& m, int64_t r, int64_t c1) {
  const int64_t T = m.len;
  switch (m.kind) {
    case MemoryKind::local: return {r * T, r * T + c1};
    case MemoryKind::long_: return {0, r * T + c1};
    case MemoryKind::ext: return {0, m.rows * T};
  }
  return {0, 0};
}

// Everything the backward pass needs besides the inputs: the statistics of the forward.
struct Saved {
  Tensor logits, reps;             // detached, contiguous
  std::vector<int64_t> labels;     // per position; ignore_index = not counted, not in memory
  std::vector<float> log_den, log_num;
  MemorySpec spec;
  int64_t ignore = -100, count = 0, V = 0, C = 0;
  float scale = 1.f;
};

// Scores of the tile's queries against keys [k0, k1): S = scale · Q Kᵀ, nq × (k1 − k0).
void tile_scores(const Saved& s, int64_t q0, int64_t nq, int64_t k0, int64_t k1, float* S) {
  const float* R = s.reps.data<float>();
  const int64_t C = s.C, K = k1 - k0;
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(nq), int(K), int(C), s.scale, R + q0 * C, int(C),
              R + k0 * C, int(C), 0.f, S, int(K));
}

// Walks the tiles: fn(q0, nq, k0, k1) for each segment's chunks of at most kTileRows queries.
template <class F>
void for_each_tile(const MemorySpec& m, F&& fn) {
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c0 = 0; c0 < m.len; c0 += kTileRows) {
      const int64_t c1 = std::min(m.len, c0 + kTileRows);
      auto [k0, k1] = key_range(m, r, c1);
      fn(r * m.len + c0, c1 - c0, k0, k1);
    }
}
}  // namespace

bool in_memory(const MemorySpec& m, int64_t i, int64_t j) {
  const int64_t ri = i / m.len, rj = j / m.len;
  const bool local = ri == rj && j < i;
  switch (m.kind) {
    case MemoryKind::local: return local;
    case MemoryKind::long_: return local || (rj < ri && (m.docs.empty() || m.docs[size_t(i)] == m.docs[size_t(j)]));
    case MemoryKind::ext: return ri != rj || (m.local && local);
  }
  return false;
}

Tensor trime_loss(const Tensor& logits, const Tensor& reps, const Tensor& targets, const MemorySpec& memory,
                  int64_t ignore_index, TrimeStats* stats) {
  SCION_CHECK(logits.defined() && reps.defined() && targets.defined(), "loss.trime: logits, reps and targets are needed");
  SCION_CHECK(logits.device().is_cpu() && reps.device().is_cpu() && targets.device().is_cpu(),
              "loss.trime: runs on CPU tensors (got logits ", logits.desc(), ", reps ", reps.desc(), ")");
  SCION_CHECK(logits.dtype() == DType::f32 && reps.dtype() == DType::f32, "loss.trime: logits and reps must be f32 (got ",
              logits.desc(), ", ", reps.desc(), ")");
  auto s = std::make_shared<Saved>();
  const int64_t N = targets.numel(), V = logits.size(-1), C = reps.size(-1);
  SCION_CHECK(N > 0 && logits.numel() == N * V && reps.numel() == N * C, "loss.trime: logits ", logits.desc(), ", reps ",
              reps.desc(), " and targets ", targets.desc(), " do not describe the same positions");
  SCION_CHECK(memory.rows > 0 && memory.len > 0 && memory.rows * memory.len == N, "loss.trime: the memory layout ",
              memory.rows, " segments × ", memory.len, " tokens does not cover the ", N, " positions");
  SCION_CHECK(memory.docs.empty() || int64_t(memory.docs.size()) == N, "loss.trime: ", memory.docs.size(),
              " document ids for ", N, " positions");
  SCION_CHECK(memory.temperature > 0.f, "loss.trime: the memory temperature must be > 0, got ", memory.temperature);
  s->logits = logits.detach().contiguous();
  s->reps = reps.detach().contiguous();
  s->labels = targets.detach().to(DType::i64).contiguous().to_vector_i64();
  s->spec = memory;
  s->ignore = ignore_index;
  s->V = V, s->C = C;
  s->scale = 1.f / (std::sqrt(float(C)) * memory.temperature);
  s->log_den.assign(size_t(N), 0.f);
  s->log_num.assign(size_t(N), 0.f);
  const float* L = s->logits.data<float>();
  const std::vector<int64_t>& y = s->labels;
  for (int64_t i = 0; i < N; ++i)
    SCION_CHECK(y[size_t(i)] == ignore_index || (y[size_t(i)] >= 0 && y[size_t(i)] < V), "loss.trime: target ",
                y[size_t(i)], " at position ", i, " is outside [0, ", V, ") and is not the ignore index ", ignore_index);

  // The vocabulary's part: log Z_vocab and the target's logit.
  std::vector<float> lse_vocab(size_t(N), kNegInf), tok(size_t(N), kNegInf);
  for (int64_t i = 0; i < N; ++i) {
    if (y[size_t(i)] == ignore_index) continue;
    const float* row = L + i * V;
    float m = row[0];
    for (int64_t v = 1; v < V; ++v) m = std::max(m, row[v]);
    double sum = 0;
    for (int64_t v = 0; v < V; ++v) sum += std::exp(double(row[v] - m));
    lse_vocab[size_t(i)] = m + float(std::log(sum));
    tok[size_t(i)] = row[y[size_t(i)]];
  }

  // The memory's part, tile by tile: log Σ_{j∈M(i)} exp(s_ij) and the same over the j whose
  // label is the target.
  std::vector<float> S;
  double mem_total = 0, hits = 0, mass = 0;
  const MemorySpec& m = s->spec;
  for_each_tile(m, [&](int64_t q0, int64_t nq, int64_t k0, int64_t k1) {
    const int64_t K = k1 - k0;
    S.resize(size_t(nq * K));
    tile_scores(*s, q0, nq, k0, k1, S.data());
    for (int64_t a = 0; a < nq; ++a) {
      const int64_t i = q0 + a;
      const int64_t t = y[size_t(i)];
      if (t == ignore_index) continue;
      const float* row = S.data() + a * K;
      float max_all = kNegInf, max_pos = kNegInf;
      int64_t visible = 0;
      for (int64_t b = 0; b < K; ++b) {
        const int64_t j = k0 + b;
        if (y[size_t(j)] == ignore_index || !in_memory(m, i, j)) continue;
        ++visible;
        max_all = std::max(max_all, row[b]);
        if (y[size_t(j)] == t) max_pos = std::max(max_pos, row[b]);
      }
      double sum_all = 0, sum_pos = 0;
      if (visible)
        for (int64_t b = 0; b < K; ++b) {
          const int64_t j = k0 + b;
          if (y[size_t(j)] == ignore_index || !in_memory(m, i, j)) continue;
          sum_all += std::exp(double(row[b] - max_all));
          if (y[size_t(j)] == t) sum_pos += std::exp(double(row[b] - max_pos));
        }
      const float ctx_all = visible ? max_all + float(std::log(sum_all)) : kNegInf;
      const float ctx_pos = sum_pos > 0 ? max_pos + float(std::log(sum_pos)) : kNegInf;
      s->log_den[size_t(i)] = log_add(lse_vocab[size_t(i)], ctx_all);
      s->log_num[size_t(i)] = log_add(tok[size_t(i)], ctx_pos);
      mem_total += double(visible);
      if (ctx_pos != kNegInf) hits += 1, mass += std::exp(double(ctx_pos - s->log_num[size_t(i)]));
    }
  });
  double total = 0;
  for (int64_t i = 0; i < N; ++i)
    if (y[size_t(i)] != ignore_index) total += double(s->log_den[size_t(i)] - s->log_num[size_t(i)]), ++s->count;
  const double n = double(std::max<int64_t>(1, s->count));
  if (stats) *stats = {mem_total / n, hits / n, mass / n};
  Tensor out = Tensor::scalar(float(total / n));

  if (autograd::needs_grad({&logits, &reps})) {
    const Shape ls = logits.shape(), rs = reps.shape();
    autograd::record("trime_loss", out, {logits, reps, targets}, [s, ls, rs](const Tensor& g) {
      const float w = s->count > 0 ? g.item() / float(s->count) : 0.f;
      const int64_t N = int64_t(s->labels.size()), V = s->V, C = s->C;
      const std::vector<int64_t>& y = s->labels;
      const float* L = s->logits.data<float>();
      const float* R = s->reps.data<float>();
      // d/dl_iv: w·(exp(l_iv − log den) − [v = y_i]·exp(l_iv − log num)).
      Tensor gl = Tensor::empty(ls, DType::f32);
      float* GL = gl.data<float>();
      for (int64_t i = 0; i < N; ++i) {
        float* out_row = GL + i * V;
        if (y[size_t(i)] == s->ignore) {
          std::fill(out_row, out_row + V, 0.f);
          continue;
        }
        const float* row = L + i * V;
        const float den = s->log_den[size_t(i)];
        for (int64_t v = 0; v < V; ++v) out_row[v] = w * std::exp(row[v] - den);
        out_row[y[size_t(i)]] -= w * std::exp(row[y[size_t(i)]] - s->log_num[size_t(i)]);
      }
      // d/ds_ij likewise, then through s_ij = scale · g_i·g_j into both the query and the key.
      Tensor gr = Tensor::zeros(rs, DType::f32);
      float* GR = gr.data<float>();
      std::vector<float> S;
      for_each_tile(s->spec, [&](int64_t q0, int64_t nq, int64_t k0, int64_t k1) {
        const int64_t K = k1 - k0;
        S.resize(size_t(nq * K));
        tile_scores(*s, q0, nq, k0, k1, S.data());
        bool any = false;
        for (int64_t a = 0; a < nq; ++a) {
          const int64_t i = q0 + a;
          float* row = S.data() + a * K;
          const int64_t t = y[size_t(i)];
          if (t == s->ignore) {
            std::fill(row, row + K, 0.f);
            continue;
          }
          const float den = s->log_den[size_t(i)], num = s->log_num[size_t(i)];
          for (int64_t b = 0; b < K; ++b) {
            const int64_t j = k0 + b;
            if (y[size_t(j)] == s->ignore || !in_memory(s->spec, i, j)) {
              row[b] = 0.f;
              continue;
            }
            const float sc = row[b];
            row[b] = w * (std::exp(sc - den) - (y[size_t(j)] == t ? std::exp(sc - num) : 0.f));
            any = true;
          }
        }
        if (!any) return;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(nq), int(C), int(K), s->scale, S.data(), int(K),
                    R + k0 * C, int(C), 1.f, GR + q0 * C, int(C));
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(K), int(C), int(nq), s->scale, S.data(), int(K),
                    R + q0 * C, int(C), 1.f, GR + k0 * C, int(C));
      });
      return std::vector<Tensor>{gl, gr, Tensor()};
    });
  }
  return out;
}

}  // namespace scion::memory
