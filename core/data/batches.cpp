// Batches of windows (scion/data.h).
#include <algorithm>

#include "scion/data.h"
#include "scion/error.h"

namespace scion::data {

Batch empty_batch(int64_t rows, int64_t seq_len) {
  return {Tensor::empty({rows, seq_len}, DType::i64), Tensor::empty({rows, seq_len}, DType::i64)};
}

void put_row(Batch& b, int64_t row, std::span<const int32_t> window) {
  const int64_t T = b.tokens.size(1);
  SCION_CHECK(int64_t(window.size()) == T + 1, "data: a window of ", window.size(), " tokens in a batch of seq_len ", T,
              " (a window holds seq_len + 1)");
  int64_t* x = b.tokens.data<int64_t>() + row * T;
  int64_t* y = b.targets.data<int64_t>() + row * T;
  for (int64_t t = 0; t < T; ++t) {
    x[t] = window[size_t(t)];
    y[t] = window[size_t(t) + 1];
  }
}

Batch make_batch(const std::vector<Window>& rows, int64_t seq_len) {
  Batch b = empty_batch(int64_t(rows.size()), seq_len);
  for (size_t r = 0; r < rows.size(); ++r) put_row(b, int64_t(r), rows[r]);
  return b;
}

std::vector<SlidingWindow> sliding_windows(const std::vector<Window>& windows, int64_t T, int64_t stride) {
  const int64_t W = int64_t(windows.size());
  std::vector<SlidingWindow> out;
  if (stride <= 0 || stride >= T) {
    for (int64_t w = 0; w < W; ++w) out.push_back({windows[size_t(w)], w * T, 0});
    return out;
  }
  if (W == 0) return out;
  std::vector<int32_t> text;  // every window's inputs, then the last window's final target
  for (const Window& w : windows) {
    SCION_CHECK(int64_t(w.size()) == T + 1, "sliding_windows: a window of ", w.size(), " tokens, not seq_len + 1 = ", T + 1);
    text.insert(text.end(), w.begin(), w.begin() + T);
  }
  text.push_back(windows.back()[size_t(T)]);
  const int64_t N = W * T;  // input positions
  auto add = [&](int64_t begin, int64_t first) {
    out.push_back({Window(text.begin() + begin, text.begin() + begin + T + 1), begin, first});
  };
  add(0, 0);
  int64_t scored_to = T;  // positions [0, scored_to) are scored
  for (int64_t begin = stride; begin + T <= N; begin += stride) {
    add(begin, scored_to - begin);
    scored_to = begin + T;
  }
  if (scored_to < N) add(N - T, scored_to - (N - T));
  return out;
}

std::vector<Batch> batches_from_windows(const std::vector<Window>& windows, int64_t B, int64_t T, int64_t max_batches) {
  std::vector<const Window*> picked;
  const size_t budget = size_t(std::max<int64_t>(0, B * max_batches));
  const size_t stride = windows.size() > budget && budget > 0 ? windows.size() / budget : 1;
  for (size_t i = 0; i < windows.size() && picked.size() < budget; i += stride) picked.push_back(&windows[i]);
  std::vector<Batch> out;
  for (size_t i = 0; i < picked.size(); i += size_t(B)) {
    const int64_t b = std::min<int64_t>(B, int64_t(picked.size() - i));
    Batch batch = empty_batch(b, T);
    for (int64_t r = 0; r < b; ++r) put_row(batch, r, *picked[i + size_t(r)]);
    out.push_back(std::move(batch));
  }
  return out;
}

}  // namespace scion::data
