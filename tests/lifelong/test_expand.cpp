// ELLE's expansion: the lineage rule's layer order, copies inserted after their sources, the
// function kept by width growth (exact for a left-to-right doubling, a pinned LayerNorm
// deviation for ELLE's random map), noise on copies only.
#include <gtest/gtest.h>

#include <cmath>

#include "elle_expand.h"
#include "growth/tiny_models.h"
#include "lm_nodes.h"
#include "scion/autograd.h"
#include "scion/ops.h"

using namespace scion;
using namespace scion::lifelong;

namespace {
double rel_err(const Tensor& a, const Tensor& b) {
  auto x = a.to_vector(), y = b.to_vector();
  double d = 0, s = 0;
  for (size_t i = 0; i < x.size(); ++i) d = std::max(d, std::fabs(double(x[i]) - y[i])), s = std::max(s, std::fabs(double(y[i])));
  return d / s;
}
lm::DecoderConfig gpt(int64_t layers) {
  lm::DecoderConfig c = tiny::gpt_cfg();
  c.layers = layers;
  c.tied = false;
  return c;
}
// Marks each block by writing its index into ln_1.bias[0], so the order survives surgery.
void tag_layers(lm::DecoderNode& n) {
  NoGradGuard g;
  for (int64_t l = 0; l < n.architecture().layers(); ++l) {
    Tensor b = n.module().parameter(n.block_prefix(l) + "ln_1.bias");
    Tensor v = b.clone();
    v.data<float>()[0] = float(l);
    b.copy_(v);
  }
}
std::vector<int64_t> tags(lm::DecoderNode& n) {
  std::vector<int64_t> out;
  for (int64_t l = 0; l < n.architecture().layers(); ++l)
    out.push_back(int64_t(n.module().parameter(n.block_prefix(l) + "ln_1.bias").to_vector()[0]));
  return out;
}
}  // namespace

TEST(ElleLineage, SixToTwelveInStepsEndsInterleaved) {
  for (uint64_t seed : {0ull, 1ull, 7ull}) {
    lm::DecoderNode n(gpt(6));
    tag_layers(n);
    for (int64_t to : {8, 10, 11, 12}) {
      ExpandOptions o;
      o.base_layers = 6, o.layers = to, o.lineage_seed = seed, o.seed = uint64_t(to);
      const auto before = tags(n);
      expand(n, o);
      const auto after = tags(n);
      ASSERT_EQ(int64_t(after.size()), to);
      // Every original layer is doubled at most once before 12: each appears once or twice,
      // its copies next to each other (a copy right after its source), in the original order.
      std::vector<int64_t> count(6, 0);
      for (size_t i = 0; i < after.size(); ++i) {
        ++count[size_t(after[i])];
        if (i > 0) {
          EXPECT_LE(after[i - 1], after[i]);
        }
      }
      for (int64_t c : count) EXPECT_TRUE(c == 1 || c == 2);
      // The layers that were there stay, in order (a subsequence of the new order).
      size_t j = 0;
      for (int64_t t : after)
        if (j < before.size() && before[j] == t) ++j;
      EXPECT_EQ(j, before.size());
    }
    EXPECT_EQ(tags(n), (std::vector<int64_t>{0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5})) << "seed " << seed;
  }
  // The lineage is the same whatever the steps: 6 -> 12 at once gives the same order.
  EXPECT_EQ(lineage(6, 12, 3, false), (std::vector<int64_t>{0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5}));
  EXPECT_EQ(lineage(6, 9, 3, false), lineage(6, 9, 3, false));
}

TEST(ElleLineage, EveryLayerDoubledOnceBeforeAnyTwiceAndCopiesFollowTheirSource) {
  // 3 -> 4: one layer doubled; -> 6: all doubled once; -> 7: one tripled.
  const auto c4 = lineage_counts(3, 4, 5, false), c6 = lineage_counts(3, 6, 5, false), c7 = lineage_counts(3, 7, 5, false);
  EXPECT_EQ(c6, (std::vector<int64_t>{2, 2, 2}));
  int64_t twos = 0, threes = 0;
  for (int64_t c : c4) twos += c == 2;
  for (int64_t c : c7) threes += c == 3;
  EXPECT_EQ(twos, 1);
  EXPECT_EQ(threes, 1);
  // With --add_last the top layer goes first: order for 3 -> 4 copies layer 2 after itself.
  EXPECT_EQ(elle_depth_order(3, 3, 4, 0, true), (std::vector<int64_t>{0, 1, 2, 2}));
  EXPECT_EQ(elle_depth_order(3, 4, 6, 0, true), (std::vector<int64_t>{0, 0, 1, 1, 2, 3}));
  // From 4 layers [0, 1, 2, 2'] (current indices 0..3), doubling 1 and 0 inserts after 0 and 1.
  EXPECT_THROW(lineage_counts(3, 2, 0, false), Error);
}

TEST(ElleExpand, LeftToRightWidthDoublingPreservesTheFunction) {
  lm::DecoderNode n(gpt(2));
  tiny::scramble(n.module(), 31);
  Tensor ids = Tensor::randint({2, 10}, 77, 0, 37);
  const Tensor before = n.impl().forward(ids);
  ExpandOptions o;
  o.base_layers = 2, o.width = 32, o.uniform = true;  // 4 -> 8 heads of 4, FFN 64 -> 128
  expand(n, o);
  EXPECT_EQ(n.architecture().heads[0], 8);
  EXPECT_EQ(n.architecture().ffn[0], 128);
  EXPECT_EQ(n.architecture().head_size, 4);
  EXPECT_LT(rel_err(n.impl().forward(ids), before), 1e-4);
}

TEST(ElleExpand, RandomWidthMapDeviatesUnderLayerNormByAPinnedAmount) {
  lm::DecoderNode n(gpt(2));
  tiny::scramble(n.module(), 32);
  Tensor ids = Tensor::randint({2, 10}, 77, 0, 37);
  const Tensor before = n.impl().forward(ids);
  ExpandOptions o;
  o.base_layers = 2, o.width = 24, o.seed = 9;  // ELLE's random map, 4 -> 6 heads
  expand(n, o);
  const double dev = rel_err(n.impl().forward(ids), before);
  // Measured (seeded): LayerNorm's mean and variance over the unevenly copied units change.
  std::printf("ELLE random width map: deviation %.4g of max |logit|\n", dev);
  EXPECT_NEAR(dev, 0.100, 0.01);  // 0.09999 when pinned
}

TEST(ElleExpand, NoiseTouchesOnlyTheInsertedCopies) {
  lm::DecoderNode n(gpt(2));
  tiny::scramble(n.module(), 33);
  const auto old = n.module().state_dict();
  ExpandOptions o;
  o.base_layers = 2, o.layers = 3, o.depth_noise = 0.01f, o.last_first = true, o.seed = 4;  // copies layer 1 -> [0, 1, 1']
  const auto order = expand(n, o);
  EXPECT_EQ(order, (std::vector<int64_t>{0, 1, 1}));
  auto p = [&](const std::string& name) { return n.module().parameter(name).to_vector(); };
  auto o1 = [&](const std::string& name) {
    for (const auto& [k, t] : old)
      if (k == name) return t.to_vector();
    return std::vector<float>{};
  };
  for (const std::string s : {"attn.c_attn.weight", "mlp.c_fc.weight", "ln_2.weight"}) {
    EXPECT_EQ(p("transformer.h.0." + s), o1("transformer.h.0." + s));
    EXPECT_EQ(p("transformer.h.1." + s), o1("transformer.h.1." + s));
    // The copy differs from its source by N(0, 0.01) noise.
    auto a = p("transformer.h.2." + s), b = o1("transformer.h.1." + s);
    double sq = 0;
    for (size_t i = 0; i < a.size(); ++i) sq += (a[i] - b[i]) * (a[i] - b[i]);
    EXPECT_NEAR(std::sqrt(sq / double(a.size())), 0.01, 0.003) << s;
  }
}

TEST(ElleExpand, WidthNoiseAloneLeavesTheDepthCopiesExact) {
  // ELLE's noise is on width growth only: an inserted layer is its source, bit for bit.
  lm::DecoderNode n(gpt(2));
  tiny::scramble(n.module(), 34);
  ExpandOptions o;
  o.base_layers = 2, o.layers = 3, o.noise = 0.01f, o.last_first = true, o.seed = 4;
  EXPECT_EQ(expand(n, o), (std::vector<int64_t>{0, 1, 1}));
  for (const std::string s : {"attn.c_attn.weight", "mlp.c_fc.weight", "ln_2.weight", "ln_1.bias"})
    EXPECT_EQ(n.module().parameter("transformer.h.2." + s).to_vector(), n.module().parameter("transformer.h.1." + s).to_vector()) << s;
}

namespace {
// Whether two slices of `w` along its axis of size `units` are bit-identical.
bool has_identical_units(const Tensor& w, int64_t units) {
  const auto v = w.to_vector();
  const int64_t r = w.size(0), c = w.size(1);
  const bool rows = r == units;
  const int64_t other = rows ? c : r;
  auto at = [&](int64_t u, int64_t k) { return rows ? v[size_t(u * c + k)] : v[size_t(k * c + u)]; };
  for (int64_t a = 0; a < units; ++a)
    for (int64_t b = a + 1; b < units; ++b) {
      bool same = true;
      for (int64_t k = 0; k < other && same; ++k) same = at(a, k) == at(b, k);
      if (same) return true;
    }
  return false;
}
// `steps` plain SGD updates of next-token cross-entropy on fixed random windows.
void train(lm::DecoderNode& n, int steps) {
  Tensor ids = Tensor::randint({4, 12}, 78, 0, 37);
  Tensor x = ids.narrow(1, 0, 11).contiguous(), y = ids.narrow(1, 1, 11).contiguous();
  for (int s = 0; s < steps; ++s) {
    Tensor loss = ops::cross_entropy(n.impl().forward(x), y, -100);
    loss.backward();
    NoGradGuard g;
    for (auto& [name, t] : n.module().named_parameters()) {
      Tensor p = t;
      if (p.grad().defined()) p.copy_(ops::add(p, ops::mul_scalar(p.grad(), -0.1f)));
      p.zero_grad();
    }
  }
}
}  // namespace

TEST(ElleExpand, WidthNoiseKeepsTheFunctionAndDuplicatedUnitsTrainApart) {
  for (float noise : {0.f, 0.01f}) {
    lm::DecoderNode n(gpt(2));
    tiny::scramble(n.module(), 35);
    Tensor ids = Tensor::randint({2, 10}, 77, 0, 37);
    const Tensor before = n.impl().forward(ids);
    ExpandOptions o;
    o.base_layers = 2, o.width = 32, o.uniform = true, o.noise = noise, o.seed = 6;  // every unit duplicated
    expand(n, o);
    EXPECT_LT(rel_err(n.impl().forward(ids), before), 1e-4) << "noise " << noise;
    train(n, 3);
    const int64_t ffn = n.architecture().ffn[0], qkv = 3 * n.architecture().width;
    bool dup = false;
    for (int64_t l = 0; l < 2; ++l) {
      const std::string b = "transformer.h." + std::to_string(l) + ".";
      dup = dup || has_identical_units(n.module().parameter(b + "mlp.c_fc.weight"), ffn) ||
            has_identical_units(n.module().parameter(b + "attn.c_attn.weight"), qkv);
    }
    // Without noise the copies get identical gradients and stay identical; with it, none.
    EXPECT_EQ(dup, noise == 0.f) << "noise " << noise;
  }
}

TEST(ElleLineage, BeyondOneDoublingTheCurrentLayersAreTheCandidates) {
  // 2 -> 3 -> 4 -> 5 -> 6, top first: [0, 1, 1'], [0, 0', 1, 1'], then the four current
  // layers are the candidates, the top ones first: [0, 0', 1, 1', 1'', 1'''] (ELLE's FPI_new).
  EXPECT_EQ(lineage(2, 6, 0, true), (std::vector<int64_t>{0, 0, 1, 1, 1, 1}));
  EXPECT_EQ(elle_depth_order(2, 4, 5, 0, true), (std::vector<int64_t>{0, 1, 2, 3, 3}));
  EXPECT_EQ(elle_depth_order(2, 5, 6, 0, true), (std::vector<int64_t>{0, 1, 2, 2, 3, 4}));
  // At random, the second round picks 2 of the 4 current layers: both of one original in
  // 2 of the 6 pairs (a 2/4 or 4/2 split), one of each otherwise.
  int uneven = 0;
  for (uint64_t seed = 0; seed < 300; ++seed) {
    const auto c = lineage_counts(2, 6, seed, false);
    ASSERT_EQ(c[0] + c[1], 6);
    uneven += c[0] != 3;
  }
  EXPECT_NEAR(uneven / 300.0, 1.0 / 3.0, 0.1);
}

TEST(ElleExpand, RefusesToShrinkOrToForgetTheBase) {
  lm::DecoderNode n(gpt(3));
  ExpandOptions o;
  o.base_layers = 3, o.layers = 2;
  EXPECT_THROW(expand(n, o), Error);
  o.base_layers = 4, o.layers = 5;  // the model has fewer layers than it started with
  EXPECT_THROW(expand(n, o), Error);
}
