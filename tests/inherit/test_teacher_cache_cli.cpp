// `scion teacher-cache` and a student trained from its cache, through the real executable:
// graphs/ki_cached.toml shortened, the writer's resume, and every refusal of a cache that does
// not fit the graph (validate) or the run (world size).
#include <gtest/gtest.h>

#include <algorithm>
#include <map>

#include "scion/teacher_cache.h"
#include "scion_cli.h"

namespace tc = scion::teacher_cache;

namespace {

// A tiny teacher (graphs/gpt_pretrain.toml, 2 updates) and graphs/ki_cached.toml around it.
struct Student {
  fs::path dir;
  std::string graph;  // "graphs/ki_cached.toml --set ..." (without the cache)
};

Student setup(const std::string& tag) {
  Student s{temp(tag), ""};
  const std::string small =
      " --set nodes.student.layers=1 --set nodes.student.width=32 --set nodes.student.heads=2 --set nodes.ppl.max_batches=1";
  const Result r = sh("run graphs/gpt_pretrain.toml --plain --out " + (s.dir / "teacher").string() + small +
                      " --set stages.0.steps=2 --set stages.0.eval.every=2 --set stages.0.optimizer.warmup=0");
  EXPECT_EQ(r.rc, 0) << r.out;
  s.graph = "graphs/ki_cached.toml" + small + " --set nodes.teacher.load=" + (s.dir / "teacher" / "student.safetensors").string() +
            " --set stages.0.steps=4 --set stages.0.eval.every=4 --set stages.0.checkpoint.every=2 --set stages.0.log_every=1"
            " --set nodes.inherit.steps=3 --set nodes.corpus.batch_size=2 --set nodes.corpus.seq_len=32"
            " --set nodes.corpus.shuffle_buffer=64 --set nodes.student.context=32 --set nodes.ppl.seq_len=32";
  return s;
}

std::string cache_of(const fs::path& c) { return " --set nodes.inherit.cache=" + c.string(); }

}  // namespace

TEST(TeacherCacheCli, WritesTrainsAStudentAndResumesToIdenticalShards) {
  const Student s = setup("tcache_cli");
  const fs::path c = s.dir / "cache";
  const std::string write = "teacher-cache " + s.graph + " --teacher teacher --out " + c.string() +
                            " --k 8 --steps 3 --steps-per-shard 2 --plain";
  Result r = sh(write);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("2 shard(s) written, 0 already whole"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[teacher-cache rank 0] step 3/3"), std::string::npos) << r.out;  // the progress line
  const tc::Manifest m = tc::Manifest::read(c.string());
  EXPECT_EQ(m.steps, 3);
  EXPECT_EQ(m.layout.slot_bytes(), 8 * (4 + 2) + 2);  // topk, bf16: ids, log-probs, the rest's log
  EXPECT_EQ(json_int(m.json.at("bytes_per_token")), 50);
  EXPECT_GT(json_number(m.json.at("teacher_forward_flops")), 0.0);
  EXPECT_EQ(json_number(m.json.at("tokens")), 3.0 * 2 * 32);  // 3 updates of 2 windows of 32 tokens
  EXPECT_EQ(m.json.at("teacher").at("hash").get<std::string>().size(), 16u);

  // The student: α from 1 to 0 over 3 updates reads the cache at updates 0 to 2, then trains alone.
  r = sh("run " + s.graph + cache_of(c) + " --plain --out " + (s.dir / "student").string());
  ASSERT_EQ(r.rc, 0) << r.out;
  int with_kl = 0;
  for (const Json& l : metrics(s.dir / "student"))
    if (l.contains("inherit/kl")) {
      ++with_kl;
      EXPECT_TRUE(std::isfinite(json_number(l.at("inherit/kl"))));
    }
  EXPECT_EQ(with_kl, 3);
  // The teacher's forward FLOPs are charged to the cache, once: the student's counter is the
  // student's alone (a run that ran the teacher would count a third of its 6N per token more).
  int shown = 0;
  for (const Json& l : metrics(s.dir / "student"))
    if (l.contains("inherit/teacher_cache_flops")) {
      ++shown;
      EXPECT_NEAR(json_number(l.at("inherit/teacher_cache_flops")), json_number(m.json.at("teacher_forward_flops")), 1.0);
    }
  EXPECT_EQ(shown, 4);  // every training line, the same figure (not a per-step cost)

  // The student resumed from its checkpoint at update 2 (the later one gone, as after a kill)
  // reads the cache where the uninterrupted run read it: the same losses, bit for bit.
  auto losses = [&] {
    std::map<int64_t, double> out;
    for (const Json& l : metrics(s.dir / "student"))
      if (l.contains("inherit/lm")) out[json_int(l.at("step"))] = json_number(l.at("loss"));
    return out;
  };
  const auto uninterrupted = losses();
  ASSERT_EQ(uninterrupted.size(), 4u);
  fs::remove_all(s.dir / "student" / "checkpoints" / "step_4");
  std::ofstream(s.dir / "student" / "checkpoints" / checkpoint::kLatestFile) << "{\"checkpoint\":\"step_2\",\"step\":2}";
  r = sh("run " + s.graph + cache_of(c) + " --plain --resume --out " + (s.dir / "student").string());
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(losses(), uninterrupted);

  // Resumed after a kill: the missing shard is written again, identical; the whole one is kept.
  const std::string first = slurp(c / tc::shard_name(0, 0)), second = slurp(c / tc::shard_name(0, 2));
  fs::remove(c / tc::shard_name(0, 0));
  r = sh(write);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("1 shard(s) written, 1 already whole"), std::string::npos) << r.out;
  EXPECT_EQ(slurp(c / tc::shard_name(0, 0)), first);
  // A truncated shard is refused by validate, then rewritten identically.
  fs::resize_file(c / tc::shard_name(0, 2), 100);
  r = sh("validate " + s.graph + cache_of(c));
  EXPECT_EQ(r.rc, 3 << 8) << r.out;
  EXPECT_NE(r.out.find("is truncated: 100 bytes"), std::string::npos) << r.out;
  r = sh(write);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(slurp(c / tc::shard_name(0, 2)), second);
  // Another configuration into the same folder is refused, not mixed in.
  r = sh("teacher-cache " + s.graph + " --teacher teacher --out " + c.string() + " --k 4 --steps 3 --plain");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("holds a cache written with other settings"), std::string::npos) << r.out;

  // Sampled targets (the unbiased estimator), f16: written and trained from; and again
  // identical on a rewrite (the draws are seeded by step and rank).
  const fs::path cs = s.dir / "sampled";
  const std::string write_s = "teacher-cache " + s.graph + " --teacher teacher --out " + cs.string() +
                              " --format sample --k 4 --dtype f16 --steps 3 --plain";
  r = sh(write_s);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(json_int(tc::Manifest::read(cs.string()).json.at("bytes_per_token")), 4 * (4 + 2 + 2));
  const std::string drawn = slurp(cs / tc::shard_name(0, 0));
  fs::remove(cs / tc::shard_name(0, 0));
  ASSERT_EQ(sh(write_s).rc, 0);
  EXPECT_EQ(slurp(cs / tc::shard_name(0, 0)), drawn);
  r = sh("run " + s.graph + cache_of(cs) + " --plain --out " + (s.dir / "student_s").string());
  ASSERT_EQ(r.rc, 0) << r.out;
}

TEST(TeacherCacheCli, RefusesACacheThatDoesNotFitTheGraphOrTheRun) {
  const Student s = setup("tcache_refuse");
  const fs::path c = s.dir / "cache";
  Result r = sh("teacher-cache " + s.graph + " --teacher teacher --out " + c.string() + " --k 4 --steps 3 --plain");
  ASSERT_EQ(r.rc, 0) << r.out;
  ASSERT_EQ(sh("validate " + s.graph + cache_of(c)).rc, 0);
  // Each refused by validate (exit 3) at loss.inherit's line in the graph, naming what differs.
  const std::vector<std::pair<std::string, std::string>> cases = {
      {" --set nodes.corpus.seq_len=16", "written with seq_len = 32 for data node 'corpus', this graph has 16"},
      {" --set nodes.corpus.shuffle=false", "written with shuffle = true"},
      {" --set nodes.corpus.files=data/corpus/news/train.txt", "written with files = "},
      {" --set run.seed=5", "written for run seed 23"},
      {" --set nodes.inherit.steps=5", "covers the run's updates 0 to 2, but the loss reads its teacher until update 3"},
      {" --set stages.0.name=other", "written for another stage plan: stage 0 is 'other'"},
      {" --set nodes.inherit.temperature=1.0", "written at temperature 2.0"},
      {" --set nodes.inherit.teacher=teacher.logits", "from the cache '" + c.string() + "' and from input 'teacher' at once"},
  };
  // The graph with the cache written into it, so that the refusal points at its line.
  std::string text = slurp(fs::path(SCION_SOURCE_DIR) / "graphs/ki_cached.toml");
  const std::string key = "cache = \"runs/ki-cached-teacher\"";
  const size_t at = text.find(key);
  ASSERT_NE(at, std::string::npos);
  const int line = 1 + int(std::count(text.begin(), text.begin() + long(at), '\n'));
  text.replace(at, key.size(), "cache = \"" + c.string() + "\"");
  const fs::path graph = s.dir / "ki_cached.toml";
  std::ofstream(graph) << text;
  const std::string in_file = s.graph.substr(std::string("graphs/ki_cached.toml").size());
  const std::string where = graph.string() + ":" + std::to_string(line) + ":9: error: node 'inherit' (loss.inherit): ";
  for (const auto& [set, want] : cases) {
    r = sh("validate " + graph.string() + in_file + set);
    EXPECT_EQ(r.rc, 3 << 8) << set << "\n" << r.out;
    EXPECT_NE(r.out.find(where), std::string::npos) << set << "\n" << r.out;
    EXPECT_NE(r.out.find(want), std::string::npos) << set << "\n" << r.out;
  }
  // A folder of the user's is never written into.
  fs::create_directories(s.dir / "mine");
  std::ofstream(s.dir / "mine" / "notes.txt") << "mine";
  r = sh("teacher-cache " + s.graph + " --teacher teacher --out " + (s.dir / "mine").string() + " --k 4 --steps 3 --plain");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("teacher cache folder"), std::string::npos) << r.out;
  EXPECT_EQ(slurp(s.dir / "mine" / "notes.txt"), "mine");
  r = sh("validate " + s.graph + cache_of(s.dir / "nowhere"));
  EXPECT_EQ(r.rc, 3 << 8) << r.out;
  EXPECT_NE(r.out.find("is missing (hint: write it first"), std::string::npos) << r.out;
  // A data file changed since the cache was written (same name, other contents).
  fs::create_directories(s.dir / "data");
  fs::copy_file(fs::path(SCION_SOURCE_DIR) / "data/corpus/news/train.txt", s.dir / "data/a.txt");
  const std::string own = " --set nodes.corpus.files=" + (s.dir / "data/a.txt").string();
  const fs::path c2 = s.dir / "cache2";
  ASSERT_EQ(sh("teacher-cache " + s.graph + own + " --teacher teacher --out " + c2.string() + " --k 4 --steps 3 --plain").rc, 0);
  ASSERT_EQ(sh("validate " + s.graph + own + cache_of(c2)).rc, 0);
  std::ofstream(s.dir / "data/a.txt", std::ios::app) << "\n\nA paragraph added later.\n";
  r = sh("validate " + s.graph + own + cache_of(c2));
  EXPECT_EQ(r.rc, 3 << 8) << r.out;
  EXPECT_NE(r.out.find("data file '" + (s.dir / "data/a.txt").string() + "' is not the one it was written from"),
            std::string::npos) << r.out;
  // Written for 2 ranks, run on 1: refused when the loss is made, before the first update.
  const fs::path c3 = s.dir / "cache_w2";
  ASSERT_EQ(sh("teacher-cache " + s.graph + " --teacher teacher --out " + c3.string() + " --k 4 --steps 3 --world 2 --plain").rc, 0);
  EXPECT_TRUE(fs::exists(c3 / tc::shard_name(1, 0)));
  r = sh("run " + s.graph + cache_of(c3) + " --plain --out " + (s.dir / "w").string());
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("was written for 2 rank(s), this run has 1"), std::string::npos) << r.out;
}

// Under mpirun each rank writes its own shards, the same bytes as `--world 2` in one process
// writes; a two-rank student trains from them.
TEST(TeacherCacheCli, RanksWriteTheirOwnShardsUnderMpirun) {
  const Student s = setup("tcache_mpi");
  const std::string mpirun = std::string(SCION_MPIRUN) + " --allow-run-as-root --oversubscribe -np 2 " + SCION_EXE + " ";
  const fs::path c = s.dir / "mpi", one = s.dir / "one";
  // No --steps: the updates until α reaches 0 (nodes.inherit.steps = 3 of the stage's 4).
  const std::string args = s.graph + " --teacher teacher --k 4 --plain --out ";
  auto in_source = [](const std::string& cmd) { return std::system(("cd " + std::string(SCION_SOURCE_DIR) + " && " + cmd).c_str()); };
  ASSERT_EQ(in_source(mpirun + "teacher-cache " + args + c.string()), 0);
  ASSERT_EQ(sh("teacher-cache " + args + one.string() + " --world 2").rc, 0);
  for (int rank : {0, 1}) {
    ASSERT_TRUE(fs::exists(c / tc::shard_name(rank, 0)));
    EXPECT_EQ(slurp(c / tc::shard_name(rank, 0)), slurp(one / tc::shard_name(rank, 0))) << rank;
  }
  EXPECT_EQ(slurp(c / tc::kManifestFile), slurp(one / tc::kManifestFile));
  EXPECT_EQ(tc::Manifest::read(c.string()).steps, 3);
  EXPECT_EQ(in_source(mpirun + "run " + s.graph + cache_of(c) + " --plain --out " + (s.dir / "student").string()), 0);
  EXPECT_EQ(metrics(s.dir / "student").size(), 5u);  // 4 training lines and the evaluation
}
