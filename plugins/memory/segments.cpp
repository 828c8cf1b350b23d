#include "segments.h"

#include <numeric>

#include "scion/error.h"
#include "scion/random.h"

namespace scion::memory {

SegmentCorpus load_segments(const std::vector<std::string>& files, const data::TokenizeFn& tokenize, int32_t eot_id,
                            int64_t seq_len, int64_t max_segments) {
  SegmentCorpus c;
  c.seq_len = seq_len;
  c.windows = data::TextStream::all_windows(files, tokenize, eot_id, seq_len);
  if (max_segments > 0 && int64_t(c.windows.size()) > max_segments) c.windows.resize(size_t(max_segments));
  // Windows overlap by one token (the last target of one is the first input of the next), so
  // the inputs of all windows are each stream position once: count documents over them.
  int64_t doc = 0;
  for (const auto& w : c.windows) {
    std::vector<int64_t> d(static_cast<size_t>(seq_len));
    for (int64_t t = 0; t < seq_len; ++t) {
      d[size_t(t)] = doc;
      if (w[size_t(t)] == eot_id) ++doc;
    }
    c.docs.push_back(std::move(d));
  }
  return c;
}

SegmentCorpus sliding_windows(const SegmentCorpus& c, int64_t stride) {
  const int64_t T = c.seq_len;
  if (stride <= 0 || stride >= T || c.windows.empty()) return c;
  SCION_CHECK(c.first_scored.empty(), "sliding_windows: the corpus is already cut into sliding windows");
  std::vector<int64_t> docs;  // of every input position of the text
  for (const auto& d : c.docs) docs.insert(docs.end(), d.begin(), d.end());
  SegmentCorpus out;
  out.seq_len = T;
  for (auto& w : data::sliding_windows(c.windows, T, stride)) {
    out.docs.emplace_back(docs.begin() + w.begin, docs.begin() + w.begin + T);
    out.first_scored.push_back(w.first_scored);
    out.windows.push_back(std::move(w.tokens));
  }
  return out;
}

SegmentBatcher::SegmentBatcher(const SegmentCorpus& corpus, SegmentOrder order, int64_t batch_size, uint64_t seed,
                               const DecodeFn& decode, Bm25Options bm25)
    : corpus_(corpus), order_(order), batch_(batch_size), seed_(seed), bm25_opts_(bm25) {
  SCION_CHECK(batch_size > 0, "data.segments: batch_size must be positive");
  SCION_CHECK(int64_t(corpus.windows.size()) >= batch_size, "data.segments: the corpus holds ", corpus.windows.size(),
              " segments of ", corpus.seq_len, " tokens, fewer than one batch of ", batch_size);
  if (order == SegmentOrder::bm25) {
    SCION_CHECK(bool(decode), "data.segments: order = bm25 needs the tokenizer's decode");
    std::unordered_map<std::string, int32_t> vocab;
    for (const auto& w : corpus.windows)
      terms_.push_back(text_terms(decode(std::span<const int32_t>(w.data(), size_t(corpus.seq_len))), vocab));
    index_ = std::make_unique<Bm25Index>(terms_, bm25.k1, bm25.b);
  }
  start_epoch();
}

void SegmentBatcher::start_epoch() {
  const int64_t N = int64_t(corpus_.windows.size());
  if (order_ == SegmentOrder::consecutive) {
    sequence_.resize(size_t(N));
    std::iota(sequence_.begin(), sequence_.end(), 0);
  } else {
    // A fresh chain each epoch (its random starts and jumps differ), from the seed and epoch.
    sequence_ = bm25_chain(*index_, terms_, bm25_opts_.neighbours, derive_seed(seed_, 0xb25c0000ull + uint64_t(epoch_)));
  }
  block_order_.resize(size_t(blocks()));
  std::iota(block_order_.begin(), block_order_.end(), 0);
  const uint64_t s = derive_seed(seed_, 0xb10c0000ull + uint64_t(epoch_));
  for (size_t i = block_order_.size(); i > 1; --i)
    std::swap(block_order_[i - 1], block_order_[size_t(random_bits(s, i) % i)]);
  cursor_ = 0;
}

std::vector<int64_t> SegmentBatcher::next() {
  if (cursor_ >= blocks()) {
    ++epoch_;
    start_epoch();
  }
  const int64_t b = block_order_[size_t(cursor_++)];
  return std::vector<int64_t>(sequence_.begin() + b * batch_, sequence_.begin() + (b + 1) * batch_);
}

std::vector<int64_t> SegmentBatcher::state() const {
  return {1 /*format*/, int64_t(corpus_.windows.size()), epoch_, cursor_};
}

void SegmentBatcher::restore(const std::vector<int64_t>& s) {
  SCION_CHECK(s.size() == 4 && s[0] == 1, "data.segments: the checkpoint's position is not one this version wrote");
  SCION_CHECK(s[1] == int64_t(corpus_.windows.size()), "data.segments: the checkpoint was made over ", s[1],
              " segments but the files now give ", corpus_.windows.size(), "; hint: the corpus or seq_len changed");
  if (s[2] != epoch_) {
    epoch_ = s[2];
    start_epoch();
  }
  cursor_ = s[3];
}

}  // namespace scion::memory
