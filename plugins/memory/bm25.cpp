#include "bm25.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

#include "scion/error.h"
#include "scion/random.h"

namespace scion::memory {

std::vector<int32_t> text_terms(std::string_view text, std::unordered_map<std::string, int32_t>& vocab) {
  std::vector<int32_t> out;
  std::string word;
  auto flush = [&] {
    if (word.empty()) return;
    auto [it, fresh] = vocab.try_emplace(word, int32_t(vocab.size()));
    out.push_back(it->second);
    word.clear();
  };
  for (unsigned char c : text) {
    if (std::isalnum(c)) word += char(std::tolower(c));
    else flush();
  }
  flush();
  return out;
}

Bm25Index::Bm25Index(const std::vector<std::vector<int32_t>>& docs, float k1, float b) : k1_(k1), b_(b) {
  SCION_CHECK(k1 >= 0 && b >= 0 && b <= 1, "bm25: k1 must be >= 0 and b in [0, 1] (got k1=", k1, ", b=", b, ")");
  int32_t max_term = -1;
  for (const auto& d : docs)
    for (int32_t t : d) max_term = std::max(max_term, t);
  postings_.resize(size_t(max_term + 1));
  double total = 0;
  std::map<int32_t, int32_t> tf;
  for (size_t d = 0; d < docs.size(); ++d) {
    tf.clear();
    for (int32_t t : docs[d]) ++tf[t];
    for (auto [t, f] : tf) postings_[size_t(t)].push_back({int32_t(d), f});
    doc_len_.push_back(int32_t(docs[d].size()));
    total += double(docs[d].size());
  }
  avg_len_ = docs.empty() ? 0 : total / double(docs.size());
  acc_.assign(docs.size(), 0.0);
}

double Bm25Index::idf(int32_t term) const {
  const double n = term >= 0 && size_t(term) < postings_.size() ? double(postings_[size_t(term)].size()) : 0;
  return std::log(1.0 + (double(size()) - n + 0.5) / (n + 0.5));
}

namespace {
// Distinct query terms with their counts (a term repeated in the query weighs that many times,
// as Lucene's one clause per query token does).
std::map<int32_t, int32_t> query_counts(const std::vector<int32_t>& q) {
  std::map<int32_t, int32_t> m;
  for (int32_t t : q) ++m[t];
  return m;
}
}  // namespace

double Bm25Index::score(const std::vector<int32_t>& query, int64_t d) const {
  double s = 0;
  const double norm = k1_ * (1.0 - b_ + b_ * double(doc_len_[size_t(d)]) / avg_len_);
  for (auto [t, qtf] : query_counts(query)) {
    if (t < 0 || size_t(t) >= postings_.size()) continue;
    const auto& p = postings_[size_t(t)];
    auto it = std::lower_bound(p.begin(), p.end(), std::pair<int32_t, int32_t>{int32_t(d), 0});
    if (it == p.end() || it->first != d) continue;
    const double f = it->second;
    s += qtf * idf(t) * f * (k1_ + 1.0) / (f + norm);
  }
  return s;
}

std::vector<std::pair<int64_t, double>> Bm25Index::search(const std::vector<int32_t>& query, int64_t k) const {
  touched_.clear();
  for (auto [t, qtf] : query_counts(query)) {
    if (t < 0 || size_t(t) >= postings_.size()) continue;
    const double w = qtf * idf(t);
    for (auto [d, f] : postings_[size_t(t)]) {
      if (acc_[size_t(d)] == 0.0) touched_.push_back(d);
      const double norm = k1_ * (1.0 - b_ + b_ * double(doc_len_[size_t(d)]) / avg_len_);
      acc_[size_t(d)] += w * double(f) * (k1_ + 1.0) / (double(f) + norm);
    }
  }
  std::vector<std::pair<int64_t, double>> hits;
  hits.reserve(touched_.size());
  for (int32_t d : touched_) {
    if (acc_[size_t(d)] > 0) hits.push_back({d, acc_[size_t(d)]});
    acc_[size_t(d)] = 0.0;
  }
  auto better = [](const auto& a, const auto& b) { return a.second != b.second ? a.second > b.second : a.first < b.first; };
  const size_t n = std::min(hits.size(), size_t(std::max<int64_t>(0, k)));
  std::partial_sort(hits.begin(), hits.begin() + std::ptrdiff_t(n), hits.end(), better);
  hits.resize(n);
  return hits;
}

std::vector<int64_t> bm25_chain(const Bm25Index& index, const std::vector<std::vector<int32_t>>& docs, int64_t k,
                                uint64_t seed) {
  const int64_t N = int64_t(docs.size());
  SCION_CHECK(index.size() == N, "bm25 chain: the index holds ", index.size(), " documents, the queries ", N);
  // Unvisited documents in a vector with each one's position, so that a random pick and a
  // removal are O(1).
  std::vector<int64_t> left(static_cast<size_t>(N)), where(static_cast<size_t>(N));
  for (int64_t d = 0; d < N; ++d) left[size_t(d)] = d, where[size_t(d)] = d;
  auto visit = [&](int64_t d) {
    const int64_t at = where[size_t(d)], last = left.back();
    left[size_t(at)] = last, where[size_t(last)] = at;
    left.pop_back();
    where[size_t(d)] = -1;
  };
  std::vector<int64_t> chain;
  chain.reserve(size_t(N));
  uint64_t draws = 0;
  int64_t cur = -1;
  while (!left.empty()) {
    int64_t next = -1;
    if (cur >= 0)
      for (auto [d, s] : index.search(docs[size_t(cur)], k))
        if (where[size_t(d)] >= 0) {
          next = d;
          break;
        }
    if (next < 0) next = left[size_t(random_bits(seed, draws++) % uint64_t(left.size()))];
    visit(next);
    chain.push_back(next);
    cur = next;
  }
  return chain;
}

}  // namespace scion::memory
