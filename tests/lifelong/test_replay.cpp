// Replay: the share of replayed rows, the forgetting-proportional choice of a domain on a
// constructed case, resumable draws; AP and AP+ on a hand-computed example.
#include <gtest/gtest.h>

#include "lifelong_scores.h"
#include "replay.h"
#include "scion/error.h"

using namespace scion;
using namespace scion::lifelong;

TEST(Replay, ShareOfRowsIsTheFractionToWithinOneRow) {
  ReplayShare s;
  s.fraction = 0.1;
  int64_t total = 0;
  std::vector<int64_t> first;
  for (int b = 0; b < 100; ++b) {
    const int64_t n = s.rows(8);
    if (b < 6) first.push_back(n);
    total += n;
    EXPECT_LE(std::abs(double(total) - 0.1 * 8 * (b + 1)), 1.0);
  }
  EXPECT_EQ(total, 80);
  EXPECT_EQ(first, (std::vector<int64_t>{0, 1, 1, 1, 1, 0}));
  ReplayShare none;
  none.fraction = 0;
  EXPECT_EQ(none.rows(8), 0);
  ReplayShare all;
  all.fraction = 1;
  EXPECT_EQ(all.rows(8), 8);
}

TEST(Replay, DomainsAreDrawnInProportionToMeasuredForgetting) {
  ReplaySampler s(42);
  const std::vector<std::string> c = {"a", "b", "c"};
  s.observe({{"a", 3.0}, {"b", 3.0}, {"c", 3.0}});  // first losses: no rate yet, weights 1
  for (const auto& d : c) EXPECT_EQ(s.weight(d), 1.0);
  for (int i = 0; i < 300; ++i) s.draw(c);
  const int64_t na = s.replayed("a"), nb = s.replayed("b");
  EXPECT_EQ(na + nb + s.replayed("c"), 300);
  EXPECT_NEAR(double(na), 100, 30);
  // a's loss fell by 1.0, b's by 0.5, c's rose: rates 1/na and 0.5/nb, c gets the largest.
  s.observe({{"a", 2.0}, {"b", 2.5}, {"c", 3.2}});
  const double wa = 1.0 / double(na), wb = 0.5 / double(nb), wc = std::max(wa, wb);
  EXPECT_DOUBLE_EQ(s.weight("a"), wa);
  EXPECT_DOUBLE_EQ(s.weight("b"), wb);
  EXPECT_DOUBLE_EQ(s.weight("c"), wc);
  EXPECT_EQ(s.replayed("a"), 0);  // counts restart at each observation
  std::map<std::string, int> hits;
  const int N = 30000;
  for (int i = 0; i < N; ++i) ++hits[s.draw(c)];
  const double sum = wa + wb + wc;
  EXPECT_NEAR(hits["a"] / double(N), wa / sum, 0.01);
  EXPECT_NEAR(hits["b"] / double(N), wb / sum, 0.01);
  EXPECT_NEAR(hits["c"] / double(N), wc / sum, 0.01);
  // All rose: each gets weight 1. A tiny drop is floored at 1e-9, never 0.
  ReplaySampler t(1);
  t.observe({{"a", 1.0}, {"b", 1.0}});
  t.observe({{"a", 1.5}, {"b", 1.0}});
  EXPECT_EQ(t.weight("a"), 1.0);
  EXPECT_EQ(t.weight("b"), 1.0);
  t.observe({{"a", 1.5 - 1e-15}, {"b", 1.0}});
  EXPECT_EQ(t.weight("a"), 1e-9);
  EXPECT_EQ(t.weight("b"), 1e-9);
}

TEST(Replay, DrawsAreSeededAndResume) {
  ReplaySampler a(7), b(7);
  const std::vector<std::string> c = {"x", "y", "z"};
  a.observe({{"x", 2.0}, {"y", 2.0}, {"z", 2.0}});
  for (int i = 0; i < 50; ++i) a.draw(c);
  a.observe({{"x", 1.0}, {"y", 1.9}, {"z", 2.5}});
  b.restore(json_parse(json_dump(a.state())));
  for (int i = 0; i < 200; ++i) ASSERT_EQ(a.draw(c), b.draw(c)) << i;
  ReplaySampler other(8);
  int same = 0;
  ReplaySampler fresh(7);
  for (int i = 0; i < 100; ++i) same += other.draw(c) == fresh.draw(c);
  EXPECT_LT(same, 90);
}

TEST(Replay, SampledIndicesAreDistinctSortedAndSeeded) {
  auto s = sample_indices(100, 10, 3);
  ASSERT_EQ(s.size(), 10u);
  for (size_t i = 1; i < s.size(); ++i) EXPECT_LT(s[i - 1], s[i]);
  EXPECT_EQ(s, sample_indices(100, 10, 3));
  EXPECT_NE(s, sample_indices(100, 10, 4));
  EXPECT_EQ(sample_indices(5, 5, 1), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_THROW(sample_indices(5, 6, 1), Error);
}

TEST(LifelongScores, APAndAPPlusOnAHandComputedExample) {
  // Three domains seen; the current one is c. At the ends of their stages a had ppl 10 and
  // b 20; now a = 13, b = 19, c = 40.
  //   AP  = (13 + 19 + 40) / 3 = 24
  //   AP+ = ((13 - 10) + (19 - 20)) / 2 = 1
  const auto s = lifelong_scores({"a", "b", "c"}, {"a", "b"}, {{"a", 13}, {"b", 19}, {"c", 40}}, {{"a", 10}, {"b", 20}});
  EXPECT_DOUBLE_EQ(s.ap, 24.0);
  EXPECT_TRUE(s.has_ap_plus);
  EXPECT_DOUBLE_EQ(s.ap_plus, 1.0);
  // The first domain: AP is its perplexity, no AP+.
  const auto first = lifelong_scores({"a"}, {}, {{"a", 50}}, {});
  EXPECT_DOUBLE_EQ(first.ap, 50.0);
  EXPECT_FALSE(first.has_ap_plus);
  // An earlier domain without its end-of-stage perplexity is an error, not a silent 0.
  EXPECT_THROW(lifelong_scores({"a", "b"}, {"a"}, {{"a", 1}, {"b", 2}}, {}), Error);
}
