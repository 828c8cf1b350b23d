#include "importance.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "scion/error.h"

namespace scion::prune {
namespace {

// acc[c] += (mean_t |A[b, t, c]|)² for every row b of A [B, T, N].
void add_rows(const Tensor& A, std::vector<double>& acc) {
  SCION_CHECK(A.defined() && A.dim() == 3, "importance: an activation is missing or not [B, T, N] (",
              A.defined() ? A.desc() : std::string("undefined"), ")");
  const int64_t B = A.size(0), T = A.size(1), N = A.size(2);
  SCION_CHECK(int64_t(acc.size()) == N, "importance: an activation has ", N, " channels, expected ", acc.size());
  const std::vector<float> v = A.to_vector();
  std::vector<double> mean(static_cast<size_t>(N));
  for (int64_t b = 0; b < B; ++b) {
    std::fill(mean.begin(), mean.end(), 0.0);
    for (int64_t t = 0; t < T; ++t) {
      const float* row = v.data() + (b * T + t) * N;
      for (int64_t c = 0; c < N; ++c) mean[size_t(c)] += std::fabs(double(row[c]));
    }
    for (int64_t c = 0; c < N; ++c) {
      const double m = mean[size_t(c)] / double(T);
      acc[size_t(c)] += m * m;
    }
  }
}

}  // namespace

ImportanceAccumulator::ImportanceAccumulator(const Architecture& a) : arch_(a) {
  SCION_CHECK(a.pre_ln, "importance: Minitron's scores read each sublayer's norm output, which a post-norm model "
              "(BERT) does not have before its sublayers");
  const size_t L = size_t(a.layers());
  context_sq_.resize(L), ffn_sq_.resize(L), norm_sq_.resize(2 * L), cos_sum_.assign(L, 0.0);
  for (size_t l = 0; l < L; ++l) {
    context_sq_[l].assign(size_t(a.heads[l] * a.head_size), 0.0);
    ffn_sq_[l].assign(size_t(a.ffn[l]), 0.0);
    norm_sq_[2 * l].assign(size_t(a.width), 0.0);
    norm_sq_[2 * l + 1].assign(size_t(a.width), 0.0);
  }
}

void ImportanceAccumulator::add(const nn::ActivationRecord& batch) {
  SCION_CHECK(int64_t(batch.blocks.size()) == arch_.layers(), "importance: the forward pass ran ", batch.blocks.size(),
              " blocks, the model has ", arch_.layers());
  for (size_t l = 0; l < batch.blocks.size(); ++l) {
    const nn::BlockActivations& b = batch.blocks[l];
    if (arch_.heads[l] > 0) add_rows(b.attention_context, context_sq_[l]), add_rows(b.attention_norm, norm_sq_[2 * l]);
    if (arch_.ffn[l] > 0) add_rows(b.ffn_hidden, ffn_sq_[l]), add_rows(b.ffn_norm, norm_sq_[2 * l + 1]);
    const std::vector<float> x = b.input.to_vector(), y = b.output.to_vector();
    const int64_t C = arch_.width, n = int64_t(x.size()) / C;
    for (int64_t t = 0; t < n; ++t) {
      double xy = 0, xx = 0, yy = 0;
      for (int64_t c = 0; c < C; ++c) {
        const double a = x[size_t(t * C + c)], o = y[size_t(t * C + c)];
        xy += a * o, xx += a * a, yy += o * o;
      }
      cos_sum_[l] += xx > 0 && yy > 0 ? xy / std::sqrt(xx * yy) : 0.0;
    }
    if (l == 0) tokens_ += n, rows_ += b.input.size(0);
  }
}

ImportanceScores ImportanceAccumulator::scores() const {
  SCION_CHECK(tokens_ > 0, "importance: no calibration batch was seen");
  ImportanceScores s;
  const size_t L = size_t(arch_.layers());
  const int64_t D = arch_.head_size;
  s.heads.resize(L), s.ffn.resize(L), s.layers.resize(L);
  s.hidden.assign(size_t(arch_.width), 0.0);
  for (size_t l = 0; l < L; ++l) {
    for (int64_t h = 0; h < arch_.heads[l]; ++h) {
      double sq = 0;  // the L2 norm of the head's channel scores: sqrt(Σ_c score_c²) = sqrt(Σ_c acc_c)
      for (int64_t d = 0; d < D; ++d) sq += context_sq_[l][size_t(h * D + d)];
      s.heads[l].push_back(std::sqrt(sq));
    }
    for (double a : ffn_sq_[l]) s.ffn[l].push_back(std::sqrt(a));
    for (size_t k : {2 * l, 2 * l + 1})
      for (size_t c = 0; c < norm_sq_[k].size(); ++c) s.hidden[c] += std::sqrt(norm_sq_[k][c]);
    s.layers[l] = 1.0 - cos_sum_[l] / double(tokens_);
  }
  return s;
}

std::vector<int64_t> top_indices(const std::vector<double>& score, int64_t n) {
  std::vector<int64_t> idx(score.size());
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return score[size_t(a)] > score[size_t(b)]; });
  idx.resize(size_t(std::min<int64_t>(n, int64_t(idx.size()))));
  std::sort(idx.begin(), idx.end());
  return idx;
}

std::string target_problem(const Architecture& a, const PruneTarget& t) {
  const int64_t L = a.layers();
  if (L == 0) return "the model has no layers";
  if (!a.uniform()) return "the model's layers differ in heads or FFN units (prune a dense model)";
  const int64_t H = a.heads[0], K = a.kv_heads_at(0), F = a.ffn[0];
  if (H == 0 || F == 0) return "a sublayer of the model is removed (prune a dense model)";
  auto over = [](const char* what, int64_t want, int64_t have) {
    return want > have ? std::string(what) + " " + std::to_string(want) + " is more than the model's " +
                             std::to_string(have) + " (pruning only removes)"
                       : std::string();
  };
  for (const std::string& e : {over("layers", t.layers, L), over("heads", t.heads, H), over("kv_heads", t.kv_heads, K),
                               over("ffn", t.ffn, F), over("width", t.width, a.width)})
    if (!e.empty()) return e;
  const int64_t heads = t.heads > 0 ? t.heads : H, g = H / K;
  const int64_t kv = t.kv_heads > 0 ? t.kv_heads : K == H ? heads : heads / g;
  if (heads % kv != 0 || heads / kv != g)
    return "heads " + std::to_string(heads) + " on " + std::to_string(kv) + " key/value heads changes the group size " +
           std::to_string(g) + " of the model (" + std::to_string(H) + " heads on " + std::to_string(K) +
           "); whole groups are pruned, so heads must be a multiple of " + std::to_string(g) + " and kv_heads heads / " +
           std::to_string(g);
  if ((t.layers == 0 || t.layers == L) && heads == H && (t.ffn == 0 || t.ffn == F) && (t.width == 0 || t.width == a.width))
    return "the target is the model's own shape (" + std::to_string(L) + " layers, " + std::to_string(H) + " heads, ffn " +
           std::to_string(F) + ", width " + std::to_string(a.width) + "): nothing to prune";
  return "";
}

void prune_to_target(TransformerModel& m, const ImportanceScores& s, const PruneTarget& target, uint64_t seed,
                     const char* who) {
  const Architecture a = m.architecture();
  const std::string problem = target_problem(a, target);
  SCION_CHECK(problem.empty(), who, ": ", problem);
  // Depth: the most important layers, in their order.
  std::vector<int64_t> kept(size_t(a.layers()));
  std::iota(kept.begin(), kept.end(), 0);
  if (target.layers > 0 && target.layers < a.layers()) {
    kept = top_indices(s.layers, target.layers);
    surgery::reorder_blocks(m, kept, seed);
  }
  const int64_t H = a.heads[0], K = a.kv_heads_at(0), g = H / K;
  const int64_t heads = target.heads > 0 ? target.heads : H;
  for (size_t i = 0; i < kept.size(); ++i) {
    const size_t l = size_t(kept[i]);
    if (heads < H) {
      std::vector<int64_t> keep;
      if (g == 1) {
        keep = top_indices(s.heads[l], heads);
      } else {  // whole groups, by the L2 norm of their heads' scores
        std::vector<double> group(size_t(K), 0.0);
        for (int64_t h = 0; h < H; ++h) group[size_t(h / g)] += s.heads[l][size_t(h)] * s.heads[l][size_t(h)];
        for (int64_t j : top_indices(group, heads / g))
          for (int64_t h = j * g; h < (j + 1) * g; ++h) keep.push_back(h);
      }
      surgery::keep_units(m, Unit::head, int64_t(i), keep);
    }
    if (target.ffn > 0 && target.ffn < a.ffn[l]) surgery::keep_units(m, Unit::ffn, int64_t(i), top_indices(s.ffn[l], target.ffn));
  }
  if (target.width > 0 && target.width < a.width) surgery::keep_units(m, Unit::hidden, -1, top_indices(s.hidden, target.width));
}

}  // namespace scion::prune
