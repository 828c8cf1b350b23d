// Building blocks of a data source (a DataSource node, scion/plugin.h): windows over a token
// stream, rank sharding, a resumable position, batching and BERT's masking, and a streaming
// reader of text corpora made of them. The in-tree data sources (data.text, data.domains,
// data.segments) are built from these; a third-party source reading its own format uses the
// same pieces, so its batches, sharding and resume behave like theirs.
//
// The terms: a window is seq_len + 1 tokens (a row's inputs and its next-token targets); a
// batch is tokens and targets, i64 [rows, seq_len]; a position is a flat list of integers
// that a source's state() saves and restore() reads back, so a resumed run sees exactly the
// batches it would have seen.
#pragma once
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "scion/json.h"
#include "scion/tensor.h"

namespace scion::data {

using Window = std::vector<int32_t>;  // seq_len + 1 tokens
using TokenizeFn = std::function<std::vector<int32_t>(std::string_view)>;

// ---- a resumable position ------------------------------------------------------------------
// Written with put*, read back in the same order with take*; a read past the end, or of a
// negative length, throws naming `who` (the source's name) instead of reading garbage.
class Position {
 public:
  explicit Position(std::string who = "data") : who_(std::move(who)) {}
  Position(std::vector<int64_t> values, std::string who) : values_(std::move(values)), who_(std::move(who)) {}
  void put(int64_t v) { values_.push_back(v); }
  void put_tokens(std::span<const int32_t> tokens);  // the count, then the tokens
  int64_t take();
  std::vector<int32_t> take_tokens();
  bool at_end() const { return next_ == values_.size(); }
  const std::vector<int64_t>& values() const { return values_; }
  const std::string& who() const { return who_; }
  // As a JSON array of integers (what state() returns), and back.
  Json to_json() const;
  static Position from_json(const Json& j, std::string who);

 private:
  std::vector<int64_t> values_;
  size_t next_ = 0;
  std::string who_;
};

// ---- windows over a token stream -----------------------------------------------------------
// Cuts a token stream into windows of seq_len + 1 tokens. Consecutive windows overlap by one
// token (the last target of one is the first input of the next), so every token of the
// stream is an input exactly once. Only the tokens not yet in a window are held.
class TokenWindows {
 public:
  explicit TokenWindows(int64_t seq_len);
  int64_t seq_len() const { return seq_len_; }
  void push(std::span<const int32_t> tokens) { pending_.insert(pending_.end(), tokens.begin(), tokens.end()); }
  void push(int32_t token) { pending_.push_back(token); }
  bool ready() const { return int64_t(pending_.size()) > seq_len_; }  // a whole window is pending
  Window pop();                                                        // needs ready()
  bool empty() const { return pending_.empty(); }
  void save(Position& p) const { p.put_tokens(pending_); }
  void load(Position& p) { pending_ = p.take_tokens(); }

 private:
  int64_t seq_len_;
  std::vector<int32_t> pending_;
};

// ---- rank sharding -------------------------------------------------------------------------
// Data parallelism over a stream of windows that every rank reads alike: of the rows·world
// windows a step draws, rank r keeps those whose index is r modulo world (rows of them: no
// window read twice, none skipped), and every rank ends the step at the same position. So
// the position of any rank (a checkpoint holds rank 0's) is every rank's, and a run resumes
// on another world size.
class RankShard {
 public:
  RankShard(int rank, int world, const std::string& who = "data");
  // This rank's `rows` windows of the next step; `draw` gives the stream's next window.
  std::vector<Window> take(int64_t rows, const std::function<Window()>& draw);
  int rank() const { return rank_; }
  int world() const { return world_; }
  int64_t drawn() const { return drawn_; }  // windows drawn so far, by all ranks
  void save(Position& p) const { p.put(drawn_); }
  void load(Position& p) { drawn_ = p.take(); }

 private:
  int rank_, world_;
  int64_t drawn_ = 0;
};

// ---- batching ------------------------------------------------------------------------------
struct Batch {
  Tensor tokens;   // i64 [rows, seq_len]: each window's first seq_len tokens
  Tensor targets;  // i64 [rows, seq_len]: each window's last seq_len tokens
};
// An uninitialised batch of `rows` rows, filled with put_row.
Batch empty_batch(int64_t rows, int64_t seq_len);
void put_row(Batch& b, int64_t row, std::span<const int32_t> window);
Batch make_batch(const std::vector<Window>& rows, int64_t seq_len);
// Groups windows into batches of at most batch_size rows, at most max_batches of them
// (validation sets). When that budget holds fewer windows than there are, every k-th window
// is taken, so that the batches span all files (all domains) instead of the first ones.
// Sliding-window evaluation over the text of consecutive, non-overlapping windows (seq_len + 1
// tokens each, overlapping by one, as TextStream::all_windows gives them): windows of seq_len
// inputs that advance by `stride`. The first scores all its positions, each later one only the
// positions no earlier window scored (its last `stride`; the last window ends at the text's
// end), so every position is scored once and all but the first window's positions see at
// least seq_len − stride tokens of context. `begin` is the window's first input position in
// the text. stride <= 0 or >= seq_len: the windows themselves, every position scored.
struct SlidingWindow {
  Window tokens;  // seq_len + 1 tokens
  int64_t begin = 0, first_scored = 0;
};
std::vector<SlidingWindow> sliding_windows(const std::vector<Window>& windows, int64_t seq_len, int64_t stride);
std::vector<Batch> batches_from_windows(const std::vector<Window>& windows, int64_t batch_size, int64_t seq_len,
                                        int64_t max_batches);

// ---- BERT's masked-LM corruption -----------------------------------------------------------
// Each maskable token is selected with probability `prob` (15%); a selected token becomes
// [MASK] 80% of the time, a random token 10%, and stays itself 10%. Only selected positions
// carry a target; the rest get ignore_index (-100). Every draw is a pure function of
// (seed, position), so a batch's mask is reproducible.
struct MlmConfig {
  float prob = 0.15f;
  float mask_fraction = 0.8f;    // of selected tokens -> [MASK]
  float random_fraction = 0.1f;  // of selected tokens -> a random token (the rest stay)
  int64_t mask_id = 103;
  int64_t vocab = 30522;
  std::vector<int64_t> never_mask;  // special ids ([CLS], [SEP], [PAD]) are never selected
};

struct MlmBatch {
  Tensor inputs;   // i64, same shape as the tokens
  Tensor targets;  // i64, the original token where selected, -100 elsewhere
  int64_t selected = 0;
};

MlmBatch mask_tokens(const Tensor& tokens, const MlmConfig& cfg, uint64_t seed);
// The same for rows [rows, T] that are rows first_row, first_row + row_step, ... of a larger
// batch: each token's draws are those it gets in the larger batch (a rank's share of a global
// batch masks as one process masking the whole batch would). mask_tokens is (0, 1).
MlmBatch mask_rows(const Tensor& tokens, const MlmConfig& cfg, uint64_t seed, int64_t first_row, int64_t row_step);

// ---- a streaming reader of text corpora ----------------------------------------------------
// Files (globs) are read document by document — a .txt file's documents are separated by
// blank lines, a .jsonl file has one JSON object per line with the text under "text" — and
// tokenized as they are read; documents are joined with an end-of-text token and cut into
// windows (TokenWindows), sharded over ranks (RankShard).
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
// (epoch, byte offset per file, pending tokens, buffer, RNG counters) is a Position.
struct TextStreamConfig {
  std::vector<std::string> files;  // paths or globs
  int64_t seq_len = 128;
  int64_t batch_size = 8;
  uint64_t seed = 0;
  bool shuffle = true;
  int64_t shuffle_buffer = 1024;  // windows held for shuffling (0 = no window shuffling)
  int rank = 0, world = 1;        // data-parallel sharding (RankShard)
};

class TextStream {
 public:
  TextStream(TextStreamConfig cfg, TokenizeFn tokenize, int32_t eot_id);
  // Next batch of batch_size rows. Loops over epochs forever.
  Batch next();
  // The stream's next window through the shuffle buffer, not sharded over ranks (a source that
  // mixes several streams, data.mixture, draws windows one by one and shards them itself).
  Window draw();
  int64_t epoch() const { return epoch_; }
  Position state() const;
  void restore(Position p);
  const std::vector<std::string>& files() const { return files_; }
  // Reads every window once, in file order, without shuffling (evaluation).
  static std::vector<Window> all_windows(const std::vector<std::string>& files, const TokenizeFn& tok, int32_t eot_id,
                                         int64_t seq_len);

 private:
  bool read_document(std::string& doc);                    // false at the end of the epoch's files
  bool read_document_from(size_t file, std::string& doc);  // false when the file has none left
  int64_t pick_file();                                     // -1 when every file is read
  Window next_window();
  void start_epoch();

  TextStreamConfig cfg_;
  TokenizeFn tokenize_;
  int32_t eot_;
  std::vector<std::string> files_;
  std::vector<int64_t> sizes_;    // bytes per file
  std::vector<int64_t> offsets_;  // bytes read per file this epoch (== size: done)
  int64_t epoch_ = 0;
  uint64_t file_draws_ = 0;  // file-choice RNG counter
  uint64_t draws_ = 0;       // shuffle-buffer RNG counter
  TokenWindows windows_;
  RankShard shard_;
  std::vector<Window> buffer_;
};

}  // namespace scion::data
