// The SDK's text stream (scion/data.h, data.text's reader) and data.shards' format: batches,
// shuffling, resume, bad input.
#include <gtest/gtest.h>

#include <map>

#include <filesystem>
#include <cstring>
#include <fstream>

#include "scion/data.h"
#include "scion/shards.h"

using namespace scion;
namespace fs = std::filesystem;

namespace {
struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("scion_data_" + std::to_string(::getpid()) + "_" +
                                        std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  std::string write(const std::string& name, const std::string& text) const {
    std::ofstream(path / name, std::ios::binary) << text;
    return (path / name).string();
  }
};

std::vector<int32_t> bytes_of(std::string_view s) { return {s.begin(), s.end()}; }

data::TextStreamConfig config(const std::string& glob, bool shuffle) {
  data::TextStreamConfig c;
  c.files = {glob};
  c.seq_len = 8;
  c.batch_size = 3;
  c.seed = 7;
  c.shuffle = shuffle;
  c.shuffle_buffer = 4;
  return c;
}
}  // namespace

TEST(TextStream, PacksDocumentsIntoShiftedWindows) {
  TempDir d;
  d.write("a.txt", "hello world\n\nsecond doc\n");
  data::TextStream s(config((d.path / "*.txt").string(), false), bytes_of, 256);
  auto [x, y] = s.next();
  ASSERT_EQ(x.shape(), (Shape{3, 8}));
  auto xs = x.to_vector_i64(), ys = y.to_vector_i64();
  const std::string expect = "hello world\n";
  for (int t = 0; t < 8; ++t) EXPECT_EQ(xs[size_t(t)], int64_t(expect[size_t(t)]));
  for (int t = 0; t < 7; ++t) EXPECT_EQ(ys[size_t(t)], xs[size_t(t) + 1]);  // targets are inputs shifted by one
  EXPECT_EQ(xs[8], ys[7]);  // the next window starts where the last target was
  // the end-of-text token separates documents
  bool saw_eot = false;
  for (auto v : xs) saw_eot |= v == 256;
  EXPECT_TRUE(saw_eot);
}

TEST(TextStream, JsonLinesAndResumeGiveTheSameBatches) {
  TempDir d;
  d.write("a.jsonl", "{\"text\": \"first \\\"quoted\\\" record \\u00e9\"}\n{\"id\": 2, \"text\": \"second record\"}\n");
  d.write("b.txt", "plain text file\nwith two lines\n\nand another paragraph here\n");
  auto cfg = config((d.path / "*").string(), true);
  data::TextStream a(cfg, bytes_of, 256), b(cfg, bytes_of, 256);
  for (int i = 0; i < 5; ++i) a.next();
  const auto saved = a.state();
  std::vector<std::vector<int64_t>> want;
  for (int i = 0; i < 6; ++i) want.push_back(a.next().tokens.to_vector_i64());
  b.restore(saved);
  for (int i = 0; i < 6; ++i)
    EXPECT_EQ(b.next().tokens.to_vector_i64(), want[size_t(i)]) << "batch " << i << " after resume";
  EXPECT_GE(a.epoch(), 1);  // the tiny corpus wrapped around
}

TEST(TextStream, InterleavesFilesOverTheEpoch) {
  // Three "domains" of equal size: shuffled reading spreads each over the whole epoch
  // instead of training on one file after another; unshuffled reading is sequential.
  TempDir d;
  for (char c : std::string("abc")) {
    std::string text;
    for (int i = 0; i < 150; ++i) text += std::string(20, c) + "\n\n";
    d.write(std::string(1, c) + ".txt", text);
  }
  auto count_first_quarter = [&](bool shuffle) {
    auto cfg = config((d.path / "*.txt").string(), shuffle);
    data::TextStream s(cfg, bytes_of, 256);
    std::map<int64_t, int> seen;
    // 150 documents of 21 bytes per file, 3 files: ~9.5k bytes an epoch, 24 bytes a batch.
    for (int i = 0; i < 100; ++i)
      for (int64_t v : s.next().tokens.to_vector_i64()) ++seen[v];
    return seen;
  };
  auto mixed = count_first_quarter(true);
  for (char c : std::string("abc")) {
    EXPECT_GT(mixed[c], 400) << c << " is missing from the first quarter of the shuffled epoch";
    EXPECT_LT(mixed[c], 1200) << c;
  }
  auto sequential = count_first_quarter(false);
  EXPECT_GT(sequential['a'], 2000);
  EXPECT_EQ(sequential['b'] + sequential['c'], 0);
}

TEST(TextStream, RefusesAPositionSavedInTheOldFormat) {
  TempDir d;
  d.write("a.txt", "some text here\n");
  data::TextStream s(config((d.path / "a.txt").string(), true), bytes_of, 256);
  auto st = s.state().values();
  st[0] = 1;
  try {
    s.restore(data::Position(st, "data.text"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("format 1"), std::string::npos) << e.what();
  }
}

TEST(TextStream, RanksReadDisjointWindows) {
  TempDir d;
  std::string text;
  for (int i = 0; i < 200; ++i) text += "line " + std::to_string(i) + "\n";
  d.write("a.txt", text);
  auto c0 = config((d.path / "a.txt").string(), false), c1 = c0;
  c0.world = c1.world = 2;
  c1.rank = 1;
  data::TextStream all(config((d.path / "a.txt").string(), false), bytes_of, 256);
  data::TextStream r0(c0, bytes_of, 256), r1(c1, bytes_of, 256);
  auto v = all.next().tokens.to_vector_i64(), v0 = r0.next().tokens.to_vector_i64(), v1 = r1.next().tokens.to_vector_i64();
  EXPECT_TRUE(std::equal(v.begin(), v.begin() + 8, v0.begin()));        // window 0 -> rank 0
  EXPECT_TRUE(std::equal(v.begin() + 8, v.begin() + 16, v1.begin()));   // window 1 -> rank 1
  EXPECT_TRUE(std::equal(v.begin() + 16, v.begin() + 24, v0.begin() + 8));
}

TEST(TextStream, BadInputNamesTheFile) {
  TempDir d;
  try {
    data::TextStream s(config((d.path / "missing*.txt").string(), false), bytes_of, 256);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing*.txt"), std::string::npos) << e.what();
  }
  const std::string empty = d.write("empty.txt", "\n\n   \n");
  try {
    data::TextStream s(config(empty, false), bytes_of, 256);
    s.next();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no text"), std::string::npos) << e.what();
  }
  std::string garbage(3000, '\0');
  for (size_t i = 0; i < garbage.size(); i += 7) garbage[i] = char(i);
  const std::string bin = d.write("garbage.txt", garbage);
  try {
    data::TextStream s(config(bin, false), bytes_of, 256);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("garbage.txt"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("does not look like text"), std::string::npos) << e.what();
  }
  const std::string bad_json = d.write("bad.jsonl", "{\"title\": \"no text field\"}\n");
  try {
    data::TextStream s(config(bad_json, false), bytes_of, 256);
    s.next();
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl"), std::string::npos) << e.what();
  }
}

TEST(Shards, RoundTripAndBadShards) {
  TempDir d;
  const std::string p = (d.path / "s.bin").string();
  std::vector<int32_t> toks = {0, 1, 50256, 65535, 42};
  shards::write_shard(p, toks);
  EXPECT_FALSE(fs::exists(p + ".tmp"));
  {
    shards::ShardReader r(p);
    ASSERT_EQ(r.size(), 5);
    for (int i = 0; i < 5; ++i) EXPECT_EQ(r[i], toks[size_t(i)]);
  }
  EXPECT_EQ(fs::file_size(p), 1024u + 10u);
  // wrong magic
  std::string bytes;
  {
    std::ifstream in(p, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  std::string wrong = bytes;
  wrong[0] = 1;
  const std::string pw = d.write("wrong.bin", wrong);
  try {
    shards::ShardReader r(pw);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("wrong.bin"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("magic"), std::string::npos) << e.what();
  }
  const std::string pt = d.write("trunc.bin", bytes.substr(0, bytes.size() - 3));
  try {
    shards::ShardReader r(pt);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("trunc.bin"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
  EXPECT_THROW(shards::ShardReader((d.path / "nope.bin").string()), Error);
  EXPECT_THROW(shards::write_shard((d.path / "big.bin").string(), {70000}), Error);
}

// llm.c's Llama 3 shard (magic 20240801, version 7, uint32 tokens): ids above 65535 round trip;
// a header whose version does not belong to its magic, a uint32 shard cut short and a uint16
// body under a uint32 header are refused naming the file.
TEST(Shards, Uint32RoundTripAndBadHeaders) {
  TempDir d;
  EXPECT_EQ(shards::width_for_vocab(65536), shards::TokenWidth::u16);
  EXPECT_EQ(shards::width_for_vocab(65537), shards::TokenWidth::u32);
  EXPECT_EQ(shards::width_for_vocab(128256), shards::TokenWidth::u32);
  const std::string p = (d.path / "s32.bin").string();
  const std::vector<int32_t> toks = {0, 1, 65535, 65536, 128255, 2147483647, 42};
  shards::write_shard(p, toks, shards::TokenWidth::u32);
  EXPECT_EQ(fs::file_size(p), 1024u + 4u * toks.size());
  std::string bytes;
  {
    std::ifstream in(p, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  int32_t head[3];
  std::memcpy(head, bytes.data(), sizeof head);
  EXPECT_EQ(head[0], 20240801);
  EXPECT_EQ(head[1], 7);
  EXPECT_EQ(head[2], int32_t(toks.size()));
  {
    shards::ShardReader r(p);
    EXPECT_EQ(r.width(), shards::TokenWidth::u32);
    ASSERT_EQ(r.size(), int64_t(toks.size()));
    for (size_t i = 0; i < toks.size(); ++i) EXPECT_EQ(r[int64_t(i)], uint32_t(toks[i]));
  }
  {
    const std::string p16 = (d.path / "s16.bin").string();
    shards::write_shard(p16, {7, 65535});
    shards::ShardReader r(p16);
    EXPECT_EQ(r.width(), shards::TokenWidth::u16);
    EXPECT_EQ(r[1], 65535u);
  }
  EXPECT_THROW(shards::write_shard((d.path / "neg.bin").string(), {-1}, shards::TokenWidth::u32), Error);
  auto refused = [&](const std::string& name, const std::string& content, const std::string& why) {
    const std::string f = d.write(name, content);
    try {
      shards::ShardReader r(f);
      ADD_FAILURE() << name << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
  };
  std::string v1 = bytes;
  const int32_t one = 1;
  std::memcpy(v1.data() + 4, &one, 4);  // the uint16 format's version under the uint32 magic
  refused("v1.bin", v1, "has version 1, expected 7 for magic 20240801");
  refused("trunc32.bin", bytes.substr(0, bytes.size() - 2), "truncated");
  // The same tokens as uint16 under the uint32 header: half the bytes the header promises.
  std::string narrow = bytes.substr(0, 1024);
  for (int32_t t : {0, 1, 2, 3, 4, 5, 6}) narrow.append(reinterpret_cast<const char*>(&t), 2);
  refused("narrow.bin", narrow, "declares 7 tokens (1052 bytes) but has 1038 bytes");
  std::string wrong = bytes;
  wrong[0] = 2;
  refused("magic.bin", wrong, "expected 20240520 (llm.c's uint16 token shard) or 20240801");
}

TEST(TextStream, ValidationBatchesSpanTheWholeSet) {
  std::vector<std::vector<int32_t>> windows;
  for (int i = 0; i < 10; ++i) windows.push_back({i, i, i});  // seq_len 2
  auto b = data::batches_from_windows(windows, 2, 2, 2);  // budget of 4 windows out of 10
  ASSERT_EQ(b.size(), 2u);
  EXPECT_EQ(b[0].tokens.to_vector_i64(), (std::vector<int64_t>{0, 0, 2, 2}));
  EXPECT_EQ(b[1].tokens.to_vector_i64(), (std::vector<int64_t>{4, 4, 6, 6}));
  auto all = data::batches_from_windows(windows, 4, 2, 100);  // everything, last batch partial
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[2].tokens.shape(), (Shape{2, 2}));
}
