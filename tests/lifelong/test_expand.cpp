// ELLE's expansion: the lineage rule's layer order, copies inserted after their sources, the
// function kept by width growth (exact for a left-to-right doubling, a pinned LayerNorm
// deviation for ELLE's random map), noise on copies only.
#include <gtest/gtest.h>

#include <cmath>

#include "elle_expand.h"
#include "growth/tiny_models.h"
#include "lm_nodes.h"

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
  o.base_layers = 2, o.layers = 3, o.noise = 0.01f, o.last_first = true, o.seed = 4;  // copies layer 1 -> [0, 1, 1']
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

TEST(ElleExpand, RefusesToShrinkOrToForgetTheBase) {
  lm::DecoderNode n(gpt(3));
  ExpandOptions o;
  o.base_layers = 3, o.layers = 2;
  EXPECT_THROW(expand(n, o), Error);
  o.base_layers = 4, o.layers = 5;  // the model has fewer layers than it started with
  EXPECT_THROW(expand(n, o), Error);
}
