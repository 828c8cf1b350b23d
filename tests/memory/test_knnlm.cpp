// The kNN-LM datastore and evaluation: FAISS search against brute force, the interpolation,
// TRIME's long memory at evaluation, atomic builds (a killed build never looks complete).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "datastore.h"
#include "scion/owned.h"
#include "decoder_model.h"
#include "knnlm.h"
#include "scion/random.h"
#include "segments.h"

namespace fs = std::filesystem;

namespace scion::memory {
namespace {

std::string slurp_text(const fs::path& f) {
  std::ifstream in(f, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

fs::path fresh_dir(const std::string& tag) {
  fs::path p = fs::temp_directory_path() / ("scion_memory_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::vector<float> random_floats(size_t n, uint64_t seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = random_normal(seed, i);
  return v;
}

DatastoreInfo info(int64_t dim, const std::string& metric, const std::string& fp = "abc") {
  DatastoreInfo i;
  i.fingerprint = fp;
  i.dim = dim;
  i.metric = metric;
  i.seq_len = 4;
  return i;
}

TEST(Datastore, FlatSearchEqualsBruteForceTopK) {
  const int64_t N = 400, D = 16, Q = 12, K = 10;
  const auto keys = random_floats(size_t(N * D), 1), queries = random_floats(size_t(Q * D), 2);
  std::vector<int32_t> vals(static_cast<size_t>(N));
  std::iota(vals.begin(), vals.end(), 0);
  for (std::string metric : {"ip", "l2"}) {
    const fs::path dir = fresh_dir("flat_" + metric);
    DatastoreWriter w((dir / "store").string(), info(D, metric));
    w.add(keys.data(), vals.data(), N / 2);
    w.add(keys.data() + (N / 2) * D, vals.data() + N / 2, N - N / 2);
    w.finish();
    auto store = Datastore::open((dir / "store").string(), "abc");
    ASSERT_EQ(store->size(), N);
    std::vector<float> sims(size_t(Q * K));
    std::vector<int64_t> ids(size_t(Q * K));
    store->search(queries.data(), Q, K, sims.data(), ids.data());
    for (int64_t q = 0; q < Q; ++q) {
      std::vector<std::pair<double, int64_t>> all;
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t d = 0; d < D; ++d) {
          const double a = queries[size_t(q * D + d)], b = keys[size_t(j * D + d)];
          s += metric == "ip" ? a * b : -(a - b) * (a - b);
        }
        all.push_back({s, j});
      }
      std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.first > b.first; });
      for (int64_t r = 0; r < K; ++r) {
        EXPECT_EQ(ids[size_t(q * K + r)], all[size_t(r)].second) << metric << " query " << q << " rank " << r;
        EXPECT_NEAR(sims[size_t(q * K + r)], all[size_t(r)].first, 1e-3) << metric;
        EXPECT_EQ(store->value(ids[size_t(q * K + r)]), int32_t(all[size_t(r)].second));
      }
    }
    // k larger than the store is refused with the store's size.
    try {
      store->search(queries.data(), 1, N + 1, sims.data(), ids.data());
      ADD_FAILURE() << "k > size accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("holds"), std::string::npos);
      EXPECT_NE(std::string(e.what()).find(std::to_string(N)), std::string::npos) << e.what();
    }
    fs::remove_all(dir);
  }
}

TEST(Datastore, IvfIndexIsAnOption) {
  const int64_t N = 2000, D = 8;
  const auto keys = random_floats(size_t(N * D), 3);
  std::vector<int32_t> vals(static_cast<size_t>(N), 7);
  const fs::path dir = fresh_dir("ivf");
  DatastoreInfo i = info(D, "l2");
  i.index = "IVF16,Flat";
  DatastoreWriter w((dir / "s").string(), i);
  w.add(keys.data(), vals.data(), N);
  w.finish();
  auto store = Datastore::open((dir / "s").string());
  std::vector<float> sims(5);
  std::vector<int64_t> ids(5);
  store->search(keys.data(), 1, 5, sims.data(), ids.data());  // a stored key finds itself first
  EXPECT_EQ(ids[0], 0);
  EXPECT_NEAR(sims[0], 0.f, 1e-4);
  // Visiting all 16 lists, IVF is exact: the brute-force top 5 of another query.
  store->set_nprobe(16);
  const auto q = random_floats(size_t(D), 99);
  store->search(q.data(), 1, 5, sims.data(), ids.data());
  std::vector<std::pair<double, int64_t>> all;
  for (int64_t j = 0; j < N; ++j) {
    double s = 0;
    for (int64_t d = 0; d < D; ++d) s -= (q[size_t(d)] - keys[size_t(j * D + d)]) * (q[size_t(d)] - keys[size_t(j * D + d)]);
    all.push_back({s, j});
  }
  std::sort(all.begin(), all.end(), [](auto& a, auto& b) { return a.first > b.first; });
  for (int r = 0; r < 5; ++r) EXPECT_EQ(ids[size_t(r)], all[size_t(r)].second) << "rank " << r;
  DatastoreInfo bad = info(D, "ip");
  bad.index = "NoSuchIndex";
  DatastoreWriter wb((dir / "b").string(), bad);
  wb.add(keys.data(), vals.data(), N);
  EXPECT_THROW(wb.finish(), Error);
  EXPECT_FALSE(fs::exists(dir / "b"));
  fs::remove_all(dir);
}

// A build replaces only what Scion wrote (docs/reliability.md, "Files Scion owns"): a folder of
// the user's at the datastore's path is refused before anything is written, and kept; a
// datastore Scion wrote (its marker, or an earlier Scion's complete manifest) is replaced.
TEST(Datastore, ABuildReplacesOnlyADatastoreScionWrote) {
  const int64_t N = 64, D = 4;
  const auto keys = random_floats(size_t(N * D), 7);
  std::vector<int32_t> vals(static_cast<size_t>(N), 3);
  const fs::path dir = fresh_dir("owned");
  fs::create_directories(dir / "mine");
  std::ofstream(dir / "mine" / "thesis.tex") << "years of work\n";
  std::ofstream(dir / "file") << "a file\n";
  for (const char* target : {"mine", "file"}) {
    SCOPED_TRACE(target);
    try {
      DatastoreWriter w((dir / target).string(), info(D, "ip"));
      ADD_FAILURE() << "a build over something Scion did not write was not refused";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("hint: name a new folder"), std::string::npos) << e.what();
    }
    EXPECT_NE(replace_problem((dir / target).string()), "");
  }
  EXPECT_EQ(slurp_text(dir / "mine" / "thesis.tex"), "years of work\n");
  EXPECT_EQ(slurp_text(dir / "file"), "a file\n");
  EXPECT_FALSE(fs::exists(dir / ("mine.partial." + std::to_string(::getpid()))));
  // A datastore Scion wrote carries the marker, and a second build replaces it; so does a build
  // over one without the marker (an earlier Scion's) whose manifest is complete.
  for (int round = 0; round < 3; ++round) {
    if (round == 2) fs::remove(dir / "store" / owned::kMarkerFile);
    DatastoreWriter w((dir / "store").string(), info(D, "ip"));
    w.add(keys.data(), vals.data(), N);
    w.finish();
    EXPECT_TRUE(owned::has_marker(dir / "store", kOwnedKind));
  }
  EXPECT_EQ(replace_problem((dir / "store").string()), "");
  EXPECT_EQ(replace_problem((dir / "nothing").string()), "");
  fs::remove_all(dir);
}

// kNN-LM recomputes l2 distances from the stored keys by default: a PQ index only chooses the
// neighbours. The index's own (quantised) distances are the option.
TEST(Datastore, L2DistancesAreRecomputedExactlyFromTheKeys) {
  const int64_t N = 512, D = 16, Q = 4, K = 8;
  const auto keys = random_floats(size_t(N * D), 5), queries = random_floats(size_t(Q * D), 6);
  std::vector<int32_t> vals(static_cast<size_t>(N), 1);
  const fs::path dir = fresh_dir("pq");
  DatastoreInfo i = info(D, "l2");
  i.index = "IVF4,PQ4x4";  // 16 centroids per sub-quantiser: quick to train
  DatastoreWriter w((dir / "s").string(), i);
  w.add(keys.data(), vals.data(), N);
  w.finish();
  auto store = Datastore::open((dir / "s").string());
  store->set_nprobe(4);
  std::vector<float> exact(size_t(Q * K)), approx(size_t(Q * K));
  std::vector<int64_t> ids(size_t(Q * K)), ids2(size_t(Q * K));
  store->search(queries.data(), Q, K, exact.data(), ids.data());
  store->search(queries.data(), Q, K, approx.data(), ids2.data(), /*exact_l2=*/false);
  EXPECT_EQ(ids, ids2);
  double worst_approx = 0;
  for (int64_t q = 0; q < Q; ++q)
    for (int64_t r = 0; r < K; ++r) {
      const int64_t id = ids[size_t(q * K + r)];
      ASSERT_GE(id, 0);
      double d2 = 0;
      for (int64_t d = 0; d < D; ++d) {
        const double a = queries[size_t(q * D + d)], b = keys[size_t(id * D + d)];
        d2 += (a - b) * (a - b);
      }
      EXPECT_NEAR(exact[size_t(q * K + r)], -d2, 1e-4 * (1 + d2)) << "query " << q << " rank " << r;
      worst_approx = std::max(worst_approx, std::abs(approx[size_t(q * K + r)] + d2));
    }
  EXPECT_GT(worst_approx, 1e-2) << "PQ distances were exact: the test does not tell the options apart";
  fs::remove_all(dir);
}

TEST(Datastore, RefusesAnotherModelsStoreAndIncompleteFolders) {
  const fs::path dir = fresh_dir("refuse");
  const auto keys = random_floats(32, 4);
  std::vector<int32_t> vals(8, 1);
  {
    DatastoreWriter w((dir / "s").string(), info(4, "ip", "model-a"));
    w.add(keys.data(), vals.data(), 8);
    w.finish();
  }
  try {
    Datastore::open((dir / "s").string(), "model-b");
    ADD_FAILURE() << "another model's datastore accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("different model"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(Datastore::open((dir / "s").string(), "model-a"));
  // A writer dropped before finish() leaves nothing (its partial folder is removed).
  {
    DatastoreWriter w((dir / "t").string(), info(4, "ip"));
    w.add(keys.data(), vals.data(), 8);
  }
  EXPECT_FALSE(fs::exists(dir / "t"));
  for (const auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path().filename(), "s");
  // A folder with the files but no finished manifest is not a datastore.
  fs::create_directories(dir / "u");
  EXPECT_THROW(Datastore::open((dir / "u").string()), Error);
  fs::remove_all(dir);
}

TEST(Datastore, AKilledBuildIsNeverLeftLookingComplete) {
  const fs::path dir = fresh_dir("killed");
  const auto keys = random_floats(64, 5);
  std::vector<int32_t> vals(16, 2);
  // An older, complete datastore at the path.
  {
    DatastoreWriter w((dir / "s").string(), info(4, "ip", "old"));
    w.add(keys.data(), vals.data(), 16);
    w.finish();
  }
  // A child process rebuilds it and is killed (SIGKILL: no destructor runs) mid-build.
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    DatastoreWriter w((dir / "s").string(), info(4, "ip", "new"));
    for (;;) {
      w.add(keys.data(), vals.data(), 16);
      ::usleep(1000);
    }
  }
  // Wait until the child's partial folder exists, then kill it.
  const std::string partial = (dir / "s").string() + ".partial." + std::to_string(child);
  for (int i = 0; i < 2000 && !fs::exists(partial); ++i) ::usleep(1000);
  EXPECT_TRUE(fs::exists(partial));
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status));
  // The old datastore is intact; the partial folder is not taken for a datastore.
  EXPECT_EQ(Datastore::open((dir / "s").string())->info().fingerprint, "old");
  EXPECT_THROW(Datastore::open(partial), Error);
  // Issue 35, item 6: the next build at the path removes the dead build's partial folder; a
  // partial folder holding anything a build does not write (a user's file) is left alone.
  const std::string foreign = (dir / "s").string() + ".partial.999999999";
  fs::create_directories(foreign);
  std::ofstream(foreign + "/notes.txt") << "mine\n";
  {
    DatastoreWriter w((dir / "s").string(), info(4, "ip", "newer"));
    w.add(keys.data(), vals.data(), 16);
    w.finish();
  }
  EXPECT_FALSE(fs::exists(partial)) << "the killed build's partial folder is still there";
  EXPECT_TRUE(fs::exists(foreign + "/notes.txt"));
  EXPECT_EQ(Datastore::open((dir / "s").string())->info().fingerprint, "newer");
  fs::remove_all(dir);
}

// Issue 35, item 6: a file replaced by other bytes of the same size (vals.i32 by random bytes
// evaluated with exit 0 and twice the perplexity) is refused at open, naming the file with
// the expected and the found hash; so is a manifest with a value or key this Scion does not write.
TEST(Datastore, EveryFileIsVerifiedAgainstTheManifestsChecksum) {
  const fs::path dir = fresh_dir("checksums");
  const auto keys = random_floats(64, 7);
  std::vector<int32_t> vals(16);
  std::iota(vals.begin(), vals.end(), 0);
  const std::string store = (dir / "s").string();
  auto build = [&] {
    fs::remove_all(store);
    DatastoreWriter w(store, info(4, "ip"));
    w.add(keys.data(), vals.data(), 16);
    w.finish();
  };
  for (const char* file : {"vals.i32", "keys.f32", "index.faiss"}) {
    SCOPED_TRACE(file);
    build();
    ASSERT_NO_THROW(Datastore::open(store));
    const fs::path f = fs::path(store) / file;
    std::string bytes(size_t(fs::file_size(f)), '\0');
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = char(random_bits(11, i));
    std::ofstream(f, std::ios::binary | std::ios::trunc) << bytes;
    try {
      Datastore::open(store);
      ADD_FAILURE() << "a replaced " << file << " was accepted";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_NE(m.find("'" + f.string() + "' is not the file its manifest names: expected " +
                       std::to_string(bytes.size()) + " bytes of XXH3 "),
                std::string::npos)
          << m;
      EXPECT_NE(m.find(", found " + std::to_string(bytes.size()) + " bytes of XXH3 " + xxh3_hex(bytes.data(), bytes.size())),
                std::string::npos)
          << m;
    }
  }
  // The manifest: each edit is refused with its words.
  build();
  const fs::path mf = fs::path(store) / "manifest.json";
  std::string text;
  {
    std::ifstream in(mf);
    text.assign(std::istreambuf_iterator<char>(in), {});
  }
  auto refused = [&](const std::string& from, const std::string& to, const std::string& says) {
    SCOPED_TRACE(to);
    std::string t = text;
    const size_t at = t.find(from);
    ASSERT_NE(at, std::string::npos) << from << " in " << text;
    t.replace(at, from.size(), to);
    std::ofstream(mf, std::ios::trunc) << t;
    DatastoreInfo i;
    try {
      read_manifest(store, i);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
    EXPECT_THROW(Datastore::open(store), Error);
  };
  refused("\"metric\":\"ip\"", "\"metric\":\"cosine\"", "has metric 'cosine', not ip or l2");
  refused("\"metric\":\"ip\"", "\"metric\":\"ip\",\"extra\":1", "has an unknown key 'extra'");
  refused("\"format\":2", "\"format\":1", "has format 1, this Scion reads 2");
  refused("\"size\":16", "\"size\":0", "has size 0");
  refused("\"size\":16", "\"size\":4611686018427387904", "does not fit in 64 bits");
  refused("\"vals.i32\"", "\"vals.bin\"", "does not name 'vals.i32'");
  fs::remove_all(dir);
}

TEST(KnnLm, LambdaZeroIsThePlainLmAndTheMixtureIsExact) {
  const float sims[4] = {2.f, 1.f, 0.5f, -1.f};
  const int32_t vals[4] = {3, 5, 3, -1};  // the last: FAISS's "no result"
  // p_kNN(3) = (e^2 + e^0.5) / (e^2 + e^1 + e^0.5).
  const double want = std::log((std::exp(2.0) + std::exp(0.5)) / (std::exp(2.0) + std::exp(1.0) + std::exp(0.5)));
  EXPECT_NEAR(knn_log_prob(sims, vals, 4, 3, 1.0), want, 1e-9);
  // A temperature divides the similarities.
  const double want_t = std::log((std::exp(1.0) + std::exp(0.25)) / (std::exp(1.0) + std::exp(0.5) + std::exp(0.25)));
  EXPECT_NEAR(knn_log_prob(sims, vals, 4, 3, 2.0), want_t, 1e-9);
  EXPECT_EQ(knn_log_prob(sims, vals, 4, 9, 1.0), -INFINITY);
  EXPECT_EQ(interpolate(-2.5, want, 0.0), -2.5);
  EXPECT_EQ(interpolate(-2.5, -INFINITY, 0.0), -2.5);
  EXPECT_NEAR(interpolate(-2.5, want, 0.3), std::log(0.7 * std::exp(-2.5) + 0.3 * std::exp(want)), 1e-12);
  EXPECT_NEAR(interpolate(-2.5, -INFINITY, 0.3), std::log(0.7) - 2.5, 1e-12);
  EXPECT_THROW(interpolate(-1, -1, 1.5), Error);
  EXPECT_THROW(interpolate(-1, -1, -0.1), Error);
}

// log P(target) from the definition over vocabulary ∪ a given memory set.
double joint(const std::vector<float>& logits, int64_t V, const std::vector<std::vector<float>>& mem_keys,
             const std::vector<int64_t>& mem_labels, const float* q, int64_t C, int64_t y, double temp) {
  double num = 0, den = 0;
  for (int64_t v = 0; v < V; ++v) {
    den += std::exp(double(logits[size_t(v)]));
    if (v == y) num += std::exp(double(logits[size_t(v)]));
  }
  for (size_t j = 0; j < mem_keys.size(); ++j) {
    double s = 0;
    for (int64_t c = 0; c < C; ++c) s += double(q[c]) * mem_keys[j][size_t(c)];
    s /= std::sqrt(double(C)) * temp;
    den += std::exp(s);
    if (mem_labels[j] == y) num += std::exp(s);
  }
  return std::log(num / den);
}

TEST(KnnLm, LongMemoryIsAFifoOfTheDocumentsEarlierWindows) {
  const int64_t T = 3, V = 4, C = 2;
  const auto L1 = random_floats(size_t(T * V), 10), R1 = random_floats(size_t(T * C), 11);
  const auto L2 = random_floats(size_t(T * V), 12), R2 = random_floats(size_t(T * C), 13);
  const int64_t y1[T] = {1, 2, 1}, y2[T] = {1, 0, 2};
  const int64_t d1[T] = {0, 0, 0}, same[T] = {0, 0, 0}, other[T] = {1, 1, 1};
  for (float temp : {1.f, 0.5f}) {
    MemoryScorer m(EvalMemory::long_, /*mem_size=*/2, temp);
    m.score_window(L1.data(), R1.data(), y1, d1, T, V, C);
    EXPECT_EQ(m.held(), 2);  // FIFO: the last two of window 1
    const auto got = m.score_window(L2.data(), R2.data(), y2, same, T, V, C);
    for (int64_t t = 0; t < T; ++t) {
      std::vector<std::vector<float>> keys;
      std::vector<int64_t> labels;
      for (int64_t j = 1; j < T; ++j) keys.push_back({R1[size_t(j * C)], R1[size_t(j * C + 1)]}), labels.push_back(y1[j]);
      for (int64_t j = 0; j < t; ++j) keys.push_back({R2[size_t(j * C)], R2[size_t(j * C + 1)]}), labels.push_back(y2[j]);
      std::vector<float> row(L2.begin() + t * V, L2.begin() + (t + 1) * V);
      EXPECT_NEAR(got[size_t(t)], joint(row, V, keys, labels, R2.data() + t * C, C, y2[t], temp), 1e-9);
    }
    // By default (the reference) the FIFO is memory across a document boundary too.
    MemoryScorer across(EvalMemory::long_, 2, temp);
    across.score_window(L1.data(), R1.data(), y1, d1, T, V, C);
    const auto c = across.score_window(L2.data(), R2.data(), y2, other, T, V, C);
    for (int64_t t = 0; t < T; ++t) EXPECT_NEAR(c[size_t(t)], got[size_t(t)], 1e-12);
    // same_document: a new document's FIFO entries are not memory (a reset at the boundary).
    MemoryScorer fresh(EvalMemory::long_, 2, temp, /*same_document=*/true), local(EvalMemory::local, 0, temp);
    fresh.score_window(L1.data(), R1.data(), y1, d1, T, V, C);
    const auto a = fresh.score_window(L2.data(), R2.data(), y2, other, T, V, C);
    const auto b = local.score_window(L2.data(), R2.data(), y2, other, T, V, C);
    for (int64_t t = 0; t < T; ++t) EXPECT_NEAR(a[size_t(t)], b[size_t(t)], 1e-12);
    // A sliding window's context (before first_scored) is local memory but neither scored nor
    // put into the FIFO.
    MemoryScorer ctx_only(EvalMemory::long_, 8, temp), whole(EvalMemory::long_, 8, temp);
    const auto sc = ctx_only.score_window(L2.data(), R2.data(), y2, same, T, V, C, /*first_scored=*/2);
    const auto wh = whole.score_window(L2.data(), R2.data(), y2, same, T, V, C);
    EXPECT_EQ(sc[0], 0.0);
    EXPECT_EQ(sc[1], 0.0);
    EXPECT_NEAR(sc[2], wh[2], 1e-12);
    EXPECT_EQ(ctx_only.held(), 1);
  }
  // No memory: the log-softmax of the logits.
  MemoryScorer none(EvalMemory::none, 0, 1.f);
  const auto p = none.score_window(L1.data(), R1.data(), y1, d1, T, V, C);
  std::vector<float> row(L1.begin(), L1.begin() + V);
  EXPECT_NEAR(p[0], joint(row, V, {}, {}, R1.data(), C, y1[0], 1.0), 1e-9);
}

// Sliding-window evaluation against its definition: every stream position is scored by
// exactly one window, which holds the stream's tokens around it and gives it at least
// seq_len − stride tokens of context (all before it, at the stream's start).
TEST(SlidingWindows, ScoreEveryPositionOnceWithItsContext) {
  for (int64_t W : {1, 3, 5})
    for (int64_t stride : {1, 3, 4, 6, 8}) {
      const int64_t T = 8;
      SegmentCorpus c;
      c.seq_len = T;
      std::vector<int32_t> stream;
      for (int64_t i = 0; i <= W * T; ++i) stream.push_back(int32_t(i));
      for (int64_t w = 0; w < W; ++w) {
        c.windows.emplace_back(stream.begin() + w * T, stream.begin() + w * T + T + 1);
        c.docs.emplace_back(size_t(T), w / 2);
      }
      const SegmentCorpus s = sliding_windows(c, stride);
      std::vector<int> scored(size_t(W * T), 0);
      for (size_t w = 0; w < s.windows.size(); ++w) {
        ASSERT_EQ(int64_t(s.windows[w].size()), T + 1);
        const int64_t begin = s.windows[w][0];
        for (int64_t t = 0; t <= T; ++t) ASSERT_EQ(s.windows[w][size_t(t)], begin + t);  // the stream's tokens
        for (int64_t t = 0; t < T; ++t) EXPECT_EQ(s.docs[w][size_t(t)], (begin + t) / T / 2);
        for (int64_t t = s.scored_from(w); t < T; ++t) {
          ++scored[size_t(begin + t)];
          if (stride < T) EXPECT_GE(t, std::min(begin + t, T - stride)) << "context of position " << begin + t;
        }
      }
      for (int64_t p = 0; p < W * T; ++p) EXPECT_EQ(scored[size_t(p)], 1) << "position " << p << " stride " << stride;
      if (stride >= T) EXPECT_EQ(s.windows.size(), c.windows.size());
    }
}

TEST(Datastore, FingerprintFollowsTheWeights) {
  lm::DecoderConfig c;
  c.vocab = 11, c.context = 8, c.layers = 1, c.width = 8, c.heads = 2, c.seed = 1;
  lm::DecoderModel a(c), b(c);
  c.seed = 2;
  lm::DecoderModel other(c);
  EXPECT_EQ(model_fingerprint(a), model_fingerprint(b));
  EXPECT_NE(model_fingerprint(a), model_fingerprint(other));
}

}  // namespace
}  // namespace scion::memory
