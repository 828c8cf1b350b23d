// TRIME's batchers over a corpus cut into segments (windows of seq_len + 1 tokens, in file
// order, each document's segments consecutive):
//   consecutive: batch rows are consecutive segments of the stream, so a row's earlier rows
//                hold the preceding text of its document (TrimeLM_long's memory; the
//                reference's --keep-order);
//   bm25:        the segments in the order of a BM25 greedy chain (bm25_chain), so a batch's
//                rows are lexically similar (TrimeLM_ext's memory; bm25_make_batches.py).
// Either sequence is cut into blocks of batch_size segments, and each epoch visits the blocks
// in a seeded random order (the rows of a block keep their order). The position is (epoch,
// block): a resumed run sees exactly the same batches.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "bm25.h"
#include "scion/data.h"

namespace scion::memory {

struct SegmentCorpus {
  int64_t seq_len = 0;
  std::vector<data::Window> windows;  // seq_len + 1 tokens: inputs and next-token targets
  std::vector<std::vector<int64_t>> docs;     // document id of each input position
  // Sliding windows (sliding_windows): the first position of each window that is scored; the
  // earlier ones are context, scored by an earlier window. Empty: every position is scored.
  std::vector<int64_t> first_scored;
  int64_t scored_from(size_t w) const { return first_scored.empty() ? 0 : first_scored[w]; }
};

// Every window of the files in order (data::TextStream::all_windows), with document ids: a
// document ends after each end-of-text token. max_segments > 0 keeps the first ones only.
SegmentCorpus load_segments(const std::vector<std::string>& files, const data::TokenizeFn& tokenize, int32_t eot_id,
                            int64_t seq_len, int64_t max_segments = 0);

// The standard sliding-window evaluation over the stream of c's windows (which must be
// non-overlapping, as load_segments gives them): windows of seq_len tokens that advance by
// `stride`; the first scores all its positions, each later one only the positions no earlier
// window scored (its last `stride`, the final window up to the stream's end), so every
// position is scored once, and all but the first window's see at least seq_len − stride
// tokens of context. stride <= 0 or >= seq_len: c itself (non-overlapping windows).
SegmentCorpus sliding_windows(const SegmentCorpus& c, int64_t stride);

enum class SegmentOrder { consecutive, bm25 };

struct Bm25Options {
  int64_t neighbours = 100;  // top-k searched per chain step
  float k1 = 0.9f, b = 0.4f;
};

using DecodeFn = std::function<std::string(std::span<const int32_t>)>;

class SegmentBatcher {
 public:
  // decode turns a segment's tokens into text for BM25's terms (order bm25 only).
  SegmentBatcher(const SegmentCorpus& corpus, SegmentOrder order, int64_t batch_size, uint64_t seed,
                 const DecodeFn& decode = {}, Bm25Options bm25 = {});
  // The segment ids of the next batch (batch_size of them), advancing the position.
  std::vector<int64_t> next();
  int64_t epoch() const { return epoch_; }
  int64_t blocks() const { return int64_t(sequence_.size()) / batch_; }
  // This epoch's sequence of segments before it is cut into blocks.
  const std::vector<int64_t>& sequence() const { return sequence_; }
  std::vector<int64_t> state() const;
  void restore(const std::vector<int64_t>& s);

 private:
  void start_epoch();
  const SegmentCorpus& corpus_;
  SegmentOrder order_;
  int64_t batch_;
  uint64_t seed_;
  Bm25Options bm25_opts_;
  std::unique_ptr<Bm25Index> index_;
  std::vector<std::vector<int32_t>> terms_;  // per segment (bm25)
  std::vector<int64_t> sequence_, block_order_;
  int64_t epoch_ = 0, cursor_ = 0;  // cursor: blocks done this epoch
};

}  // namespace scion::memory
