// A streaming reader of text corpora for language-model training.
//
// Files (globs) are read document by document — a .txt file's documents are separated by
// blank lines, a .jsonl file has one JSON object per line with the text under "text" — and
// tokenized as they are read; documents are joined with an end-of-text token and cut into
// windows of seq_len + 1 tokens (inputs and next-token targets).
//
// With shuffling on, the files are interleaved: each document comes from a file drawn with
// probability proportional to its unread bytes, so every file (every domain of a
// multi-domain corpus) is spread evenly over the epoch instead of one file being trained on
// for hundreds of steps before the next starts. Windows then pass through a seeded shuffle
// buffer (1024 windows by default: with 64, the bundled corpus's long news documents — up
// to 120 KB, ~1900 byte-level windows — filled consecutive batches from one document and made
// validation curves of short runs swing by ~0.1 nats). With shuffling off (evaluation) files
// are read one after another in sorted order.
// Nothing but the current document and the buffer is held in memory. The whole position
// (epoch, byte offset per file, pending tokens, buffer, RNG counters) is a flat list of
// integers, so a checkpoint can store it and a resumed run sees exactly the same batches.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "scion/tensor.h"

namespace scion::lm {

using TokenizeFn = std::function<std::vector<int32_t>(std::string_view)>;

struct TextStreamConfig {
  std::vector<std::string> files;  // paths or globs
  int64_t seq_len = 128;
  int64_t batch_size = 8;
  uint64_t seed = 0;
  bool shuffle = true;
  int64_t shuffle_buffer = 1024;  // windows held for shuffling (0 = no window shuffling)
  int rank = 0, world = 1;      // data-parallel sharding: rank r takes every world-th window
};


// Groups windows of seq_len + 1 tokens into batches of at most batch_size rows: inputs and
// next-token targets, i64 [rows, seq_len]. At most max_batches batches.
std::vector<std::pair<Tensor, Tensor>> batches_from_windows(const std::vector<std::vector<int32_t>>& windows,
                                                            int64_t batch_size, int64_t seq_len, int64_t max_batches);

class TextStream {
 public:
  TextStream(TextStreamConfig cfg, TokenizeFn tokenize, int32_t eot_id);
  // Next batch: tokens and targets, i64 [batch, seq_len]. Loops over epochs forever.
  void next(Tensor& tokens, Tensor& targets);
  int64_t epoch() const { return epoch_; }
  std::vector<int64_t> state() const;
  void restore(const std::vector<int64_t>& state);
  const std::vector<std::string>& files() const { return files_; }
  // Reads every window once, in file order, without shuffling (evaluation).
  static std::vector<std::vector<int32_t>> all_windows(const std::vector<std::string>& files, const TokenizeFn& tok,
                                                       int32_t eot_id, int64_t seq_len);

 private:
  bool read_document(std::string& doc);  // false at the end of the epoch's files
  bool read_document_from(size_t file, std::string& doc);  // false when the file has none left
  int64_t pick_file();                                     // -1 when every file is read
  std::vector<int32_t> next_window();
  void start_epoch();

  TextStreamConfig cfg_;
  TokenizeFn tokenize_;
  int32_t eot_;
  std::vector<std::string> files_;
  std::vector<int64_t> sizes_;    // bytes per file
  std::vector<int64_t> offsets_;  // bytes read per file this epoch (== size: done)
  int64_t epoch_ = 0;
  uint64_t file_draws_ = 0;     // file-choice RNG counter
  uint64_t draws_ = 0;          // shuffle-buffer RNG counter
  int64_t window_count_ = 0;    // windows produced (for rank sharding)
  std::vector<int32_t> pending_;
  std::vector<std::vector<int32_t>> buffer_;
};

}  // namespace scion::lm
