// loss.trime's fused joint-normalisation loss: brute-force values, memory masks, and
// finite-difference gradients through queries and keys.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "scion/autograd.h"
#include "scion/ops.h"
#include "trime_loss.h"

namespace scion::memory {
namespace {

struct Case {
  int64_t B, T, V, C;
  Tensor logits, reps, targets;
};

Case make_case(int64_t B, int64_t T, int64_t V, int64_t C, uint64_t seed, int64_t ignore_at = -1) {
  Case c{B, T, V, C, {}, {}, {}};
  c.logits = Tensor::randn({B, T, V}, seed, 0.f, 1.f);
  c.reps = Tensor::randn({B, T, C}, seed + 1, 0.f, 1.5f);
  // Few distinct labels so that memories often hold the target.
  c.targets = Tensor::randint({B, T}, seed + 2, 0, std::min<int64_t>(V, 3));
  if (ignore_at >= 0) c.targets.data<int64_t>()[ignore_at] = -100;
  return c;
}

// −log P(target) averaged over counted positions, written from the definition: for each
// query, the candidates are the V words (score l_iv, label v) and the memory positions j
// (score g_i·g_j/(√C·temp), label y_j); P(w) = Σ_{label w} e^score / Σ e^score. `mem` gives each
// query's memory set.
double brute_force(const Case& c, const std::function<bool(int64_t, int64_t)>& mem, float temp = 1.f) {
  const int64_t N = c.B * c.T;
  auto L = c.logits.to_vector(), R = c.reps.to_vector();
  auto y = c.targets.to_vector_i64();
  double total = 0;
  int64_t n = 0;
  for (int64_t i = 0; i < N; ++i) {
    if (y[size_t(i)] == -100) continue;
    std::vector<std::pair<double, int64_t>> cand;
    for (int64_t v = 0; v < c.V; ++v) cand.push_back({L[size_t(i * c.V + v)], v});
    for (int64_t j = 0; j < N; ++j) {
      if (y[size_t(j)] == -100 || !mem(i, j)) continue;
      double dot = 0;
      for (int64_t k = 0; k < c.C; ++k) dot += double(R[size_t(i * c.C + k)]) * R[size_t(j * c.C + k)];
      cand.push_back({dot / std::sqrt(double(c.C)) / temp, y[size_t(j)]});
    }
    double num = 0, den = 0;
    for (auto& [s, label] : cand) {
      den += std::exp(s);
      if (label == y[size_t(i)]) num += std::exp(s);
    }
    total += -std::log(num / den);
    ++n;
  }
  return total / double(n);
}

MemorySpec spec(MemoryKind k, int64_t B, int64_t T) {
  MemorySpec m;
  m.kind = k;
  m.rows = B;
  m.len = T;
  return m;
}

TEST(TrimeLoss, LocalEqualsBruteForceJointSoftmax) {
  Case c = make_case(2, 5, 4, 3, 11, /*ignore_at=*/3);
  MemorySpec m = spec(MemoryKind::local, 2, 5);
  const double want = brute_force(c, [&](int64_t i, int64_t j) { return i / 5 == j / 5 && j < i; });
  EXPECT_NEAR(trime_loss(c.logits, c.reps, c.targets, m).item(), want, 1e-5);
}

TEST(TrimeLoss, LongAndExtEqualBruteForce) {
  Case c = make_case(3, 4, 5, 4, 21);
  MemorySpec lng = spec(MemoryKind::long_, 3, 4);
  lng.docs = {0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1};  // row 1 changes document at column 2
  const double want_long = brute_force(c, [&](int64_t i, int64_t j) {
    return (i / 4 == j / 4 && j < i) || (j / 4 < i / 4 && lng.docs[size_t(i)] == lng.docs[size_t(j)]);
  });
  EXPECT_NEAR(trime_loss(c.logits, c.reps, c.targets, lng).item(), want_long, 1e-5);
  for (bool local : {false, true}) {
    MemorySpec ext = spec(MemoryKind::ext, 3, 4);
    ext.local = local;
    const double want = brute_force(c, [&](int64_t i, int64_t j) { return i / 4 != j / 4 || (local && j < i); });
    EXPECT_NEAR(trime_loss(c.logits, c.reps, c.targets, ext).item(), want, 1e-5) << "local " << local;
  }
  // A temperature divides the memory's similarities only.
  MemorySpec hot = spec(MemoryKind::local, 3, 4);
  hot.temperature = 0.5f;
  const double want_hot = brute_force(c, [&](int64_t i, int64_t j) { return i / 4 == j / 4 && j < i; }, 0.5f);
  EXPECT_NEAR(trime_loss(c.logits, c.reps, c.targets, hot).item(), want_hot, 1e-5);
}

TEST(TrimeLoss, LongTilesSpanSeveralSegmentsAndTiles) {
  // Segments longer than one tile (kTileRows) and several of them: the tiling must not lose keys.
  const int64_t T = kTileRows + 9;
  Case c = make_case(2, T, 6, 5, 31);
  MemorySpec m = spec(MemoryKind::long_, 2, T);
  const double want = brute_force(c, [&](int64_t i, int64_t j) { return (i / T == j / T && j < i) || j / T < i / T; });
  EXPECT_NEAR(trime_loss(c.logits, c.reps, c.targets, m).item(), want, 1e-4);
}

TEST(TrimeLoss, NoPositionSeesItselfOrTheFuture) {
  const int64_t B = 3, T = 6, N = B * T;
  MemorySpec lng = spec(MemoryKind::long_, B, T);
  MemorySpec loc = spec(MemoryKind::local, B, T);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j) {
      const bool future_or_self = (j / T == i / T && j >= i) || j / T > i / T;
      if (future_or_self) {
        EXPECT_FALSE(in_memory(loc, i, j)) << i << " sees " << j;
        EXPECT_FALSE(in_memory(lng, i, j)) << i << " sees " << j;
      }
      if (j / T != i / T) {
        EXPECT_FALSE(in_memory(loc, i, j)) << "local memory left the segment";
      }
    }
  // Ext without local memory excludes the query's whole segment; with it, only its past.
  MemorySpec ext = spec(MemoryKind::ext, B, T);
  ext.local = false;
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < N; ++j) {
      if (j / T == i / T) EXPECT_FALSE(in_memory(ext, i, j));
      else EXPECT_TRUE(in_memory(ext, i, j));
    }
  ext.local = true;
  for (int64_t i = 0; i < N; ++i) EXPECT_FALSE(in_memory(ext, i, i));
  // Long memory with documents: an earlier segment of another document is not memory.
  lng.docs.assign(size_t(N), 0);
  for (int64_t j = T; j < N; ++j) lng.docs[size_t(j)] = 1;
  EXPECT_FALSE(in_memory(lng, T + 1, 0));
  EXPECT_TRUE(in_memory(lng, 2 * T + 1, T + 3));
}

TEST(TrimeLoss, EmptyMemoryIsCrossEntropy) {
  Case c = make_case(2, 1, 7, 3, 41);  // one token per segment: local memory is empty
  EXPECT_NEAR(trime_loss(c.logits, c.reps, c.targets, spec(MemoryKind::local, 2, 1)).item(),
              ops::cross_entropy(c.logits, c.targets).item(), 1e-5);
}

// Central differences in double around each input element of a float loss.
void check_gradients(MemoryKind kind, bool local, uint64_t seed) {
  Case c = make_case(2, 5, 4, 3, seed, /*ignore_at=*/7);
  MemorySpec m = spec(kind, 2, 5);
  m.local = local;
  m.docs = {0, 0, 0, 0, 0, 0, 0, 1, 1, 1};
  Tensor logits = c.logits.clone().set_requires_grad(true);
  Tensor reps = c.reps.clone().set_requires_grad(true);
  trime_loss(logits, reps, c.targets, m).backward();
  auto loss_at = [&](const Tensor& l, const Tensor& r) {
    c.logits = l, c.reps = r;
    return brute_force(c, [&](int64_t i, int64_t j) { return in_memory(m, i, j); });
  };
  for (int which = 0; which < 2; ++which) {
    Tensor base = which == 0 ? logits.detach().clone() : reps.detach().clone();
    const std::vector<float> grad = (which == 0 ? logits : reps).grad().to_vector();
    for (int64_t e = 0; e < base.numel(); ++e) {
      const float h = 1e-2f, x0 = base.data<float>()[e];
      base.data<float>()[e] = x0 + h;
      const double up = which == 0 ? loss_at(base, reps.detach()) : loss_at(logits.detach(), base);
      base.data<float>()[e] = x0 - h;
      const double down = which == 0 ? loss_at(base, reps.detach()) : loss_at(logits.detach(), base);
      base.data<float>()[e] = x0;
      const double fd = (up - down) / (2 * h);
      EXPECT_NEAR(grad[size_t(e)], fd, 2e-3 + 1e-2 * std::fabs(fd)) << (which ? "reps" : "logits") << " element " << e;
    }
  }
}

TEST(TrimeLoss, GradientsMatchFiniteDifferencesThroughQueriesAndKeys) {
  check_gradients(MemoryKind::local, true, 51);
  check_gradients(MemoryKind::long_, true, 52);
  check_gradients(MemoryKind::ext, false, 53);
  check_gradients(MemoryKind::ext, true, 54);
}

TEST(TrimeLoss, KeysReceiveGradient) {
  // The representations of a segment's first token are only ever keys (its own memory is
  // empty): a nonzero gradient there shows gradients flow into the memory.
  Case c = make_case(1, 6, 3, 4, 61);
  c.targets = Tensor::from_vector_i64({1, 1, 1, 1, 1, 1}, {1, 6});
  Tensor reps = c.reps.clone().set_requires_grad(true);
  trime_loss(c.logits, reps, c.targets, spec(MemoryKind::local, 1, 6)).backward();
  double norm = 0;
  for (int64_t k = 0; k < 4; ++k) norm += std::fabs(reps.grad().to_vector()[size_t(k)]);
  EXPECT_GT(norm, 1e-4);
}

TEST(TrimeLoss, RefusesMismatchedLayout) {
  Case c = make_case(2, 3, 4, 3, 71);
  EXPECT_THROW(trime_loss(c.logits, c.reps, c.targets, spec(MemoryKind::local, 3, 3)), Error);
  MemorySpec m = spec(MemoryKind::local, 2, 3);
  m.temperature = 0;
  EXPECT_THROW(trime_loss(c.logits, c.reps, c.targets, m), Error);
}

}  // namespace
}  // namespace scion::memory
