// data::TokenWindows and data::RankShard (scion/data.h): windows over a token stream, and
// which of them a rank keeps.
#include "scion/data.h"
#include "scion/error.h"

namespace scion::data {

TokenWindows::TokenWindows(int64_t seq_len) : seq_len_(seq_len) {
  SCION_CHECK(seq_len > 0, "data: seq_len must be positive, got ", seq_len);
}

Window TokenWindows::pop() {
  const size_t need = size_t(seq_len_) + 1;
  SCION_CHECK(pending_.size() >= need, "data: TokenWindows::pop with ", pending_.size(), " tokens pending, fewer than a window of ",
              need);
  Window w(pending_.begin(), pending_.begin() + std::ptrdiff_t(need));
  // The last target of this window is the first input of the next.
  pending_.erase(pending_.begin(), pending_.begin() + std::ptrdiff_t(need - 1));
  return w;
}

RankShard::RankShard(int rank, int world, const std::string& who) : rank_(rank), world_(world) {
  SCION_CHECK(world >= 1 && rank >= 0 && rank < world, who, ": bad rank ", rank, " of ", world);
}

std::vector<Window> RankShard::take(int64_t rows, const std::function<Window()>& draw) {
  std::vector<Window> out;
  out.reserve(size_t(rows));
  const int64_t start = drawn_;
  for (int64_t r = 0; r < rows; ++r) {
    Window w;
    do {
      w = draw();
    } while (drawn_++ % world_ != rank_);
    out.push_back(std::move(w));
  }
  // The other ranks' windows after this rank's last: every rank ends the step alike.
  while (drawn_ < start + rows * world_) {
    (void)draw();
    ++drawn_;
  }
  return out;
}

}  // namespace scion::data
