// The blocks of scion/data.h one by one: windows over a token stream, rank sharding, the
// resumable position and batches.
#include <gtest/gtest.h>

#include <numeric>

#include "scion/data.h"
#include "scion/error.h"

using namespace scion;

namespace {
data::Window iota_window(int32_t from, size_t n) {
  data::Window w(n);
  std::iota(w.begin(), w.end(), from);
  return w;
}
}  // namespace

TEST(DataBlocks, WindowsOverlapByOneToken) {
  data::TokenWindows w(3);
  const std::vector<int32_t> tokens = iota_window(0, 6);
  w.push(std::span<const int32_t>(tokens.data(), 3));
  EXPECT_FALSE(w.ready());
  w.push(std::span<const int32_t>(tokens.data() + 3, 3));
  ASSERT_TRUE(w.ready());
  EXPECT_EQ(w.pop(), (data::Window{0, 1, 2, 3}));
  EXPECT_FALSE(w.ready());  // 3, 4, 5 pending: one short
  w.push(6);
  EXPECT_EQ(w.pop(), (data::Window{3, 4, 5, 6}));  // the last target is the next first input
  EXPECT_THROW(w.pop(), Error);
  EXPECT_THROW(data::TokenWindows(0), Error);
}

TEST(DataBlocks, RanksSplitAStepAndEndItAlike) {
  // Two ranks of a stream 0, 1, 2, ...: rank r keeps the windows whose index is r mod 2, and
  // both have drawn the whole step (rows * world windows) when it ends.
  int n0 = 0, n1 = 0;  // each rank reads its own copy of the stream
  auto s0 = [&n0] { return data::Window{n0++}; };
  auto s1 = [&n1] { return data::Window{n1++}; };
  data::RankShard r0(0, 2), r1(1, 2);
  auto a = r0.take(3, s0), b = r1.take(3, s1);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a[0][0], 0);
  EXPECT_EQ(a[2][0], 4);
  EXPECT_EQ(b[0][0], 1);
  EXPECT_EQ(b[2][0], 5);
  EXPECT_EQ(r0.drawn(), 6);
  EXPECT_EQ(r1.drawn(), 6);
  EXPECT_EQ(r0.take(1, s0)[0][0], 6);
  EXPECT_THROW(data::RankShard(2, 2), Error);
  EXPECT_THROW(data::RankShard(0, 0), Error);
}

TEST(DataBlocks, PositionRoundTripsAndRefusesATruncatedOne) {
  data::TokenWindows w(4);
  w.push(std::vector<int32_t>{7, 8});
  data::RankShard shard(0, 1);
  auto s = [n = 0]() mutable { return data::Window{n++}; };
  shard.take(5, s);
  data::Position p("data.test");
  p.put(42);
  shard.save(p);
  w.save(p);
  data::Position back = data::Position::from_json(json_parse(json_dump(p.to_json())), "data.test");
  EXPECT_EQ(back.values(), p.values());
  EXPECT_EQ(back.take(), 42);
  data::RankShard shard2(0, 1);
  shard2.load(back);
  EXPECT_EQ(shard2.drawn(), 5);
  data::TokenWindows w2(4);
  w2.load(back);
  EXPECT_TRUE(back.at_end());
  w2.push(std::vector<int32_t>{9, 10, 11});
  EXPECT_EQ(w2.pop(), (data::Window{7, 8, 9, 10, 11}));
  try {
    back.take();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("data.test"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
  data::Position bad(std::vector<int64_t>{5, 1}, "data.test");  // 5 tokens announced, 1 there
  EXPECT_THROW(bad.take_tokens(), Error);
}

TEST(DataBlocks, BatchRowsAreInputsAndNextTokenTargets) {
  data::Batch b = data::make_batch({iota_window(0, 4), iota_window(10, 4)}, 3);
  EXPECT_EQ(b.tokens.shape(), (Shape{2, 3}));
  EXPECT_EQ(b.tokens.to_vector_i64(), (std::vector<int64_t>{0, 1, 2, 10, 11, 12}));
  EXPECT_EQ(b.targets.to_vector_i64(), (std::vector<int64_t>{1, 2, 3, 11, 12, 13}));
  EXPECT_THROW(data::put_row(b, 0, iota_window(0, 3)), Error);  // seq_len tokens, not seq_len + 1
}
