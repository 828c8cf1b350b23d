// BM25 scores and search, the greedy chain, and data.segments' batchers (consecutive and
// bm25), seeded and resumable.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "bm25.h"
#include "segments.h"

namespace scion::memory {
namespace {

// Terms a=0, b=1, c=2, d=3, e=4, f=5. N = 3 documents, avgdl = (2 + 3 + 4) / 3 = 3.
std::vector<std::vector<int32_t>> three_docs() { return {{0, 1}, {0, 0, 2}, {2, 3, 4, 5}}; }

TEST(Bm25, ScoresMatchAHandComputedCase) {
  Bm25Index idx(three_docs());
  // idf(a) = ln(1 + (3 − 2 + 0.5) / (2 + 0.5)) = ln 1.6 = 0.4700036.
  EXPECT_NEAR(idx.idf(0), 0.47000362924573558, 1e-12);
  // d0, query "a": tf 1, |d| 2: 0.4700036 · 1 · 1.9 / (1 + 0.9 · (0.6 + 0.4 · 2/3)) = 0.5016893.
  EXPECT_NEAR(idx.score({0}, 0), 0.5016892671724144, 1e-6);  // k1, b are floats
  // d1, query "a": tf 2, |d| 3: 0.4700036 · 2 · 1.9 / (2 + 0.9) = 0.6158668.
  EXPECT_NEAR(idx.score({0}, 1), 0.615866824528895, 1e-6);  // k1, b are floats
  // d1, query "a c": the two terms' parts add (c: n 2, tf 1 → 0.4700036 · 1.9 / 1.9).
  EXPECT_NEAR(idx.score({0, 2}, 1), 1.0858704537746307, 1e-6);  // k1, b are floats
  // d2, query "c c": a repeated query term counts twice (Lucene: one clause per token).
  EXPECT_NEAR(idx.score({2, 2}, 2), 0.8841652431355421, 1e-6);  // k1, b are floats
  EXPECT_EQ(idx.score({3}, 0), 0.0);
  // Search ranks by the same scores; documents without a query term are not returned.
  auto hits = idx.search({0}, 10);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].first, 1);
  EXPECT_EQ(hits[1].first, 0);
  EXPECT_NEAR(hits[0].second, 0.615866824528895, 1e-6);  // k1, b are floats
  EXPECT_EQ(idx.search({0}, 1).size(), 1u);
}

TEST(Bm25, TermsAreLowercasedWords) {
  std::unordered_map<std::string, int32_t> vocab;
  auto t = text_terms("The cat, the CAT; 42 cats.", vocab);
  ASSERT_EQ(t.size(), 6u);
  EXPECT_EQ(t[0], t[2]);  // the / the
  EXPECT_EQ(t[1], t[3]);  // cat / CAT
  EXPECT_NE(t[1], t[5]);  // cat / cats: no stemming
}

TEST(Bm25, ChainVisitsEverySegmentOnceAndStepsToTheBestNeighbour) {
  // Pairs of documents share a rare word each (2p and 2p+1 share term 1000 + p); every document
  // also has common words. From either member the chain must step to its partner.
  std::vector<std::vector<int32_t>> docs;
  for (int p = 0; p < 20; ++p)
    for (int m = 0; m < 2; ++m) docs.push_back({1000 + p, 1000 + p, p % 3, 7, int32_t(2000 + 2 * p + m)});
  Bm25Index idx(docs);
  for (uint64_t seed : {1ull, 2ull, 3ull}) {
    auto chain = bm25_chain(idx, docs, 10, seed);
    ASSERT_EQ(chain.size(), docs.size());
    std::set<int64_t> seen(chain.begin(), chain.end());
    EXPECT_EQ(seen.size(), docs.size()) << "a segment was visited twice";
    // Partners are adjacent in the chain.
    for (size_t i = 0; i < chain.size(); i += 2) EXPECT_EQ(chain[i] / 2, chain[i + 1] / 2) << "at " << i;
    EXPECT_EQ(chain, bm25_chain(idx, docs, 10, seed)) << "seeded";
  }
  EXPECT_NE(bm25_chain(idx, docs, 10, 1), bm25_chain(idx, docs, 10, 2));
}

// A corpus of 24 segments of 4 tokens, documents ending at token 9 (eot).
SegmentCorpus toy_corpus() {
  SegmentCorpus c;
  c.seq_len = 4;
  for (int s = 0; s < 24; ++s) {
    std::vector<int32_t> w;
    for (int t = 0; t < 5; ++t) w.push_back(int32_t((s * 4 + t) % 10));
    c.windows.push_back(w);
    c.docs.push_back({s / 3, s / 3, s / 3, s / 3});
  }
  return c;
}

TEST(SegmentBatcher, ConsecutiveRowsAreConsecutiveSegmentsAndEveryBlockComesOnce) {
  SegmentCorpus c = toy_corpus();
  SegmentBatcher b(c, SegmentOrder::consecutive, 4, 7);
  std::set<int64_t> seen;
  for (int i = 0; i < 6; ++i) {
    auto rows = b.next();
    ASSERT_EQ(rows.size(), 4u);
    EXPECT_EQ(rows[0] % 4, 0);
    for (size_t r = 1; r < rows.size(); ++r) EXPECT_EQ(rows[r], rows[r - 1] + 1);
    seen.insert(rows.begin(), rows.end());
  }
  EXPECT_EQ(seen.size(), 24u);
  EXPECT_EQ(b.epoch(), 0);
  b.next();
  EXPECT_EQ(b.epoch(), 1);
}

TEST(SegmentBatcher, ResumesExactly) {
  SegmentCorpus c = toy_corpus();
  auto decode = [](std::span<const int32_t> ids) {
    std::string s;
    for (int32_t i : ids) s += "w" + std::to_string(i) + " ";
    return s;
  };
  for (SegmentOrder order : {SegmentOrder::consecutive, SegmentOrder::bm25}) {
    SegmentBatcher a(c, order, 4, 11, decode);
    for (int i = 0; i < 9; ++i) a.next();  // into the second epoch
    const auto saved = a.state();
    std::vector<std::vector<int64_t>> want;
    for (int i = 0; i < 8; ++i) want.push_back(a.next());
    SegmentBatcher r(c, order, 4, 11, decode);
    r.restore(saved);
    for (int i = 0; i < 8; ++i) EXPECT_EQ(r.next(), want[size_t(i)]) << "batch " << i;
    // A different seed gives another order.
    SegmentBatcher o(c, order, 4, 12, decode);
    std::vector<std::vector<int64_t>> other;
    for (int i = 0; i < 6; ++i) other.push_back(o.next());
    SegmentBatcher same(c, order, 4, 11, decode);
    std::vector<std::vector<int64_t>> first;
    for (int i = 0; i < 6; ++i) first.push_back(same.next());
    EXPECT_NE(other, first);
  }
  // A position from another corpus is refused.
  SegmentBatcher a(c, SegmentOrder::consecutive, 4, 1);
  auto s = a.state();
  s[1] = 99;
  EXPECT_THROW(a.restore(s), Error);
}

TEST(SegmentBatcher, Bm25EpochIsAPermutationOfTheSegments) {
  SegmentCorpus c = toy_corpus();
  auto decode = [](std::span<const int32_t> ids) {
    std::string s;
    for (int32_t i : ids) s += "w" + std::to_string(i) + " ";
    return s;
  };
  SegmentBatcher b(c, SegmentOrder::bm25, 4, 3, decode);
  auto seq = b.sequence();
  std::sort(seq.begin(), seq.end());
  for (int64_t i = 0; i < 24; ++i) EXPECT_EQ(seq[size_t(i)], i);
}

TEST(SegmentCorpusTest, DocumentIdsAdvanceAfterEndOfText) {
  // load_segments counts documents over the inputs: check on a file through the real reader.
  const std::string path = ::testing::TempDir() + "/segments_docs.txt";
  {
    FILE* f = std::fopen(path.c_str(), "w");
    std::fputs("aaa bbb\n\nccc\n\nddd eee fff\n", f);
    std::fclose(f);
  }
  // One token per character, end of text = 0.
  data::TokenizeFn tok = [](std::string_view s) {
    std::vector<int32_t> v;
    for (unsigned char ch : s) v.push_back(int32_t(ch));
    return v;
  };
  SegmentCorpus c = load_segments({path}, tok, 0, 4);
  ASSERT_GE(c.windows.size(), 5u);
  int64_t last = 0;
  for (size_t w = 0; w < c.windows.size(); ++w)
    for (int64_t t = 0; t < 4; ++t) {
      const int64_t d = c.docs[w][size_t(t)];
      EXPECT_GE(d, last);
      last = d;
      // A position right after an end-of-text token starts the next document.
      if (t > 0 && c.windows[w][size_t(t - 1)] == 0) {
        EXPECT_EQ(d, c.docs[w][size_t(t - 1)] + 1);
      }
    }
  EXPECT_EQ(last, 2);  // three documents
}

}  // namespace
}  // namespace scion::memory
