// An in-memory BM25 index over short documents (TRIME's training segments) and the greedy
// chain TRIME_ext's batches come from (bm25_make_batches.py in the reference).
//
// Scoring is Lucene's BM25, which Pyserini (the reference's index) uses:
//   score(q, d) = Σ_{t∈q} qtf(t) · idf(t) · tf(t,d)·(k1 + 1) / (tf(t,d) + k1·(1 − b + b·|d|/avgdl)),
//   idf(t) = ln(1 + (N − n(t) + 0.5) / (n(t) + 0.5)),
// with Pyserini's defaults k1 = 0.9, b = 0.4. Lucene drops the constant (k1 + 1) and stores
// document lengths in a lossy byte; neither changes which neighbour ranks first here except for
// near ties. Terms are lower-cased runs of letters and digits of the segment's decoded text
// (no stemming and no stop list, unlike Pyserini's default English analyser).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace scion::memory {

// Term ids of `text`, adding new words to `vocab`.
std::vector<int32_t> text_terms(std::string_view text, std::unordered_map<std::string, int32_t>& vocab);

class Bm25Index {
 public:
  // docs[d]: the term ids of document d (with repetitions).
  explicit Bm25Index(const std::vector<std::vector<int32_t>>& docs, float k1 = 0.9f, float b = 0.4f);
  int64_t size() const { return int64_t(doc_len_.size()); }
  double idf(int32_t term) const;
  // BM25 score of document d for a query (term ids with repetitions).
  double score(const std::vector<int32_t>& query, int64_t d) const;
  // The k best documents for a query, best first (ties: lower id first), scores > 0 only.
  std::vector<std::pair<int64_t, double>> search(const std::vector<int32_t>& query, int64_t k) const;

 private:
  float k1_, b_;
  double avg_len_ = 0;
  std::vector<int32_t> doc_len_;
  // Postings per term: (document, term frequency), documents ascending.
  std::vector<std::vector<std::pair<int32_t, int32_t>>> postings_;
  mutable std::vector<double> acc_;  // search's dense accumulator (one per index: not thread-safe)
  mutable std::vector<int32_t> touched_;
};

// TRIME_ext's order of documents: start at a random document, step to its best-ranked unvisited
// neighbour among its top `k` BM25 results (the document's own terms are the query), and jump
// to a random unvisited document when none is left. Visits every document exactly once.
std::vector<int64_t> bm25_chain(const Bm25Index& index, const std::vector<std::vector<int32_t>>& docs, int64_t k,
                                uint64_t seed);

}  // namespace scion::memory
