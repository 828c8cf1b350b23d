// Data parallel over MPI with real processes: `mpirun -np 2 scion run` against one rank at
// twice the per-rank batch, the validation split over ranks, one rank killed, and resume on
// the same and on another world size.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "scion_cli.h"

namespace {
const std::string kGraph = "tests/dist/dp_gpt.toml";
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif
#else
constexpr bool kAsan = false;
#endif
// mpirun as CI runs it: as root, two ranks on a 2-core machine. Under the sanitizers
// (scripts/sanitize.sh) the ranks run without LeakSanitizer: OpenMPI keeps allocations for
// the process's life by design, many from components it unloads at MPI_Finalize, which no
// suppression can name (docs/reliability.md); ASan and UBSan stay on.
std::string mpirun(int np) {
  return std::string(SCION_MPIRUN) + " --allow-run-as-root --oversubscribe" +
         (kAsan ? " -x ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1" : "") + " -np " + std::to_string(np) + " ";
}
std::string scion_exe() { return std::string(SCION_EXE); }
std::string run_cmd(const fs::path& out, const std::string& extra = "") {
  return "run " + kGraph + " --plain --out " + out.string() + " " + extra;
}
Result mpi(int np, const std::string& args) {
  const std::string cmd = std::string("cd ") + SCION_SOURCE_DIR + " && " + mpirun(np) + scion_exe() + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (p && std::fgets(buf, sizeof buf, p)) out += buf;
  return {p ? ::pclose(p) : -1, out};
}
std::vector<double> losses(const fs::path& run) {
  std::vector<double> v;
  for (const auto& j : metrics(run))
    if (j.contains("loss")) v.push_back(json_number(j.at("loss")));
  return v;
}
// Relative difference of two curves, point by point (the reduction order differs between one
// and two ranks: sums of the same numbers in another order).
double max_rel(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]) / std::abs(a[i]));
  return m;
}
// The newest checkpoints of two runs hold the same optimizer state: the same keys, the same
// f32 values bit for bit.
void expect_same_optimizer_state(const fs::path& run_a, const fs::path& run_b) {
  const auto a = last_optimizer_state(run_a), b = last_optimizer_state(run_b);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [k, t] : a) {
    ASSERT_TRUE(b.count(k)) << k;
    if (t.dtype() == DType::f32) {
      EXPECT_EQ(t.to_vector(), b.at(k).to_vector()) << k;
    }
  }
}
}  // namespace

TEST(DataParallel, TwoRanksFollowOneRankAtTwiceTheBatch) {
  const fs::path dir = temp("dp_equal");
  ASSERT_EQ(sh(run_cmd(dir / "one", "--set nodes.corpus.batch_size=8")).rc, 0);
  const Result two = mpi(2, run_cmd(dir / "two"));
  ASSERT_EQ(two.rc, 0) << two.out;
  const auto a = losses(dir / "one"), b = losses(dir / "two");
  ASSERT_EQ(a.size(), 40u);
  ASSERT_EQ(b.size(), 40u);  // rank 0 alone writes: one line per update
  EXPECT_LT(max_rel(a, b), 1e-5);
  // Tokens count both ranks.
  EXPECT_EQ(json_number(metrics(dir / "one").back().at("tokens")), json_number(metrics(dir / "two").back().at("tokens")));
  // The validation set is defined by the global batch: split over two ranks and reduced, it
  // gives one rank's value at twice the batch on the same weights, and the two runs' curves
  // of validation loss agree as their training losses do.
  double two_eval = NAN, one_eval_curve = NAN;
  for (const auto& j : metrics(dir / "two"))
    if (j.contains("ppl/loss")) two_eval = json_number(j.at("ppl/loss"));
  for (const auto& j : metrics(dir / "one"))
    if (j.contains("ppl/loss")) one_eval_curve = json_number(j.at("ppl/loss"));
  EXPECT_NEAR(two_eval, one_eval_curve, 1e-4 * one_eval_curve);
  const Result ev = sh("eval " + kGraph + " --checkpoint " + (dir / "two" / "model.safetensors").string() +
                       " --set nodes.corpus.batch_size=8");
  ASSERT_EQ(ev.rc, 0) << ev.out;
  const size_t at = ev.out.rfind("{\"checkpoint\"");
  ASSERT_NE(at, std::string::npos) << ev.out;
  const double one_eval = json_number(json_parse(ev.out.substr(at)).at("ppl").at("loss"));
  EXPECT_NEAR(two_eval, one_eval, 1e-5 * one_eval) << ev.out;
  fs::remove_all(dir);
}

TEST(DataParallel, ARankKilledEndsTheJobAndResumeWorksOnTwoAndOnOneRank) {
  const fs::path dir = temp("dp_kill");
  ASSERT_EQ(mpi(2, run_cmd(dir / "full")).rc, 0);
  const auto want = losses(dir / "full");
  // Kill one rank (SIGKILL) once checkpoint step_20 exists: the job ends non-zero.
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    const std::string cmd = std::string("cd ") + SCION_SOURCE_DIR + " && exec " + mpirun(2) + scion_exe() + " " +
                            run_cmd(dir / "part", "--set stages.0.steps=40") + " > /dev/null 2>&1";
    ::execl("/bin/sh", "sh", "-c", cmd.c_str(), (char*)nullptr);
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(dir / "part" / "checkpoints" / "step_20") && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  // mpirun (the exec'd shell) started the ranks: kill the newest of its children.
  FILE* ps = ::popen(("pgrep -n -P " + std::to_string(pid)).c_str(), "r");
  int rank_pid = 0;
  ASSERT_TRUE(ps && std::fscanf(ps, "%d", &rank_pid) == 1);
  ::pclose(ps);
  ASSERT_EQ(::kill(rank_pid, SIGKILL), 0);
  int status = 0;
  ::waitpid(pid, &status, 0);
  const bool finished_first = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (finished_first) GTEST_SKIP() << "the run finished before a rank could be killed (machine too fast for the test)";
  EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "a job with a killed rank exited 0";
  fs::copy(dir / "part", dir / "part1", fs::copy_options::recursive);
  // Resume on two ranks: the uninterrupted two-rank curve, bit for bit (same world size, the
  // same reduction order).
  const Result r2 = mpi(2, run_cmd(dir / "part", "--resume"));
  ASSERT_EQ(r2.rc, 0) << r2.out;
  EXPECT_EQ(losses(dir / "part"), want);
  // Resume the same checkpoint on one rank at twice the batch: the stream positions are global,
  // so the curve continues (to the rounding of another reduction order).
  const Result r1 = sh(run_cmd(dir / "part1", "--resume --set nodes.corpus.batch_size=8"));
  ASSERT_EQ(r1.rc, 0) << r1.out;
  // The same global batch on another number of ranks is the same run: no warning.
  EXPECT_EQ(r1.out.find("not on the curve"), std::string::npos) << r1.out;
  const auto got = losses(dir / "part1");
  ASSERT_EQ(got.size(), want.size());
  EXPECT_LT(max_rel(got, want), 1e-5);
  fs::remove_all(dir);
}

// Masked LM under ranks: each rank masks its windows as one process masks the global batch,
// and the loss is the mean over every rank's masked tokens, so two ranks at batch B follow
// one rank at 2B (losses at every step, validation too).
TEST(DataParallel, MaskedLmTwoRanksFollowOneRankAtTwiceTheBatch) {
  const fs::path dir = temp("dp_mlm");
  const std::string g = "run tests/dist/dp_bert.toml --plain --out ";
  const Result one = sh(g + (dir / "one").string() + " --set nodes.corpus.batch_size=8");
  ASSERT_EQ(one.rc, 0) << one.out;
  const Result two = mpi(2, g + (dir / "two").string());
  ASSERT_EQ(two.rc, 0) << two.out;
  const auto a = losses(dir / "one"), b = losses(dir / "two");
  ASSERT_EQ(a.size(), 6u);
  ASSERT_EQ(b.size(), 6u);
  EXPECT_LT(std::abs(a[0] - b[0]) / a[0], 1e-5) << "step 1: " << a[0] << " vs " << b[0];
  EXPECT_LT(max_rel(a, b), 1e-5);
  std::vector<double> ea, eb;
  for (const auto& j : metrics(dir / "one"))
    if (j.contains("ppl/loss")) ea.push_back(json_number(j.at("ppl/loss")));
  for (const auto& j : metrics(dir / "two"))
    if (j.contains("ppl/loss")) eb.push_back(json_number(j.at("ppl/loss")));
  ASSERT_FALSE(ea.empty());
  ASSERT_EQ(ea.size(), eb.size());
  EXPECT_LT(max_rel(ea, eb), 1e-5);
  fs::remove_all(dir);
}

TEST(DataParallel, APlainRunNeverStartsMpiAndSingleIsRefusedUnderMpirun) {
  const fs::path dir = temp("dp_single");
  const Result r = mpi(2, run_cmd(dir / "s", "--comm single --set stages.0.steps=2"));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("every rank would train alone"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

TEST(DataParallel, ZeroStageOneShardsTheOptimizerStateAndKeepsTheCurve) {
  const fs::path dir = temp("dp_zero");
  ASSERT_EQ(mpi(2, run_cmd(dir / "plain", "--set stages.0.steps=20")).rc, 0);
  const Result z = mpi(2, run_cmd(dir / "zero", "--set stages.0.steps=20 --set run.zero=1"));
  ASSERT_EQ(z.rc, 0) << z.out;
  // Each rank steps about half of the parameters (and so keeps about half the moments).
  EXPECT_NE(z.out.find("zero-1: rank 1 steps"), std::string::npos) << z.out;
  // The same arithmetic per parameter: the same losses, bit for bit.
  EXPECT_EQ(losses(dir / "zero"), losses(dir / "plain"));
  // The checkpoint gathers every rank's moments into one file: the same as without ZeRO.
  expect_same_optimizer_state(dir / "plain", dir / "zero");
  fs::remove_all(dir);
}

// A copy of `run` that resumes from checkpoint `step` (the later ones and latest.json removed).
fs::path rewound(const fs::path& run, const fs::path& to, int step) {
  fs::copy(run, to, fs::copy_options::recursive);
  for (const auto& e : fs::directory_iterator(to / "checkpoints")) {
    const std::string n = e.path().filename();
    if (n == checkpoint::kLatestFile || (n.rfind("step_", 0) == 0 && std::stoi(n.substr(5)) > step)) fs::remove_all(e);
  }
  return to;
}

// ZeRO-1 resumed on two ranks: each rank keeps only its shard of the loaded moments, so the
// checkpoints after the resume hold each moment once, and the curve is the plain one.
TEST(DataParallel, ZeroStageOneResumesOnTheSameCurve) {
  const fs::path dir = temp("dp_zero_resume");
  ASSERT_EQ(mpi(2, run_cmd(dir / "plain", "--set stages.0.steps=20")).rc, 0);
  ASSERT_EQ(mpi(2, run_cmd(dir / "zero", "--set stages.0.steps=20 --set run.zero=1")).rc, 0);
  const fs::path part = rewound(dir / "zero", dir / "part", 10);
  const Result r = mpi(2, run_cmd(part, "--set stages.0.steps=20 --set run.zero=1 --resume"));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(losses(part), losses(dir / "plain"));
  expect_same_optimizer_state(dir / "plain", part);
  fs::remove_all(dir);
}

// ZeRO-1 across a growth op: the stage continues the optimizer, the op carries every moment to
// the grown parameters and the new shards give parameters new owners; the curve is the one
// without ZeRO (bit for bit: the same arithmetic per parameter), and so is a resume from the
// checkpoint at the stage boundary.
TEST(DataParallel, ZeroStageOneFollowsGrowthAndResumesAcrossIt) {
  const fs::path dir = temp("dp_zero_grow");
  ASSERT_EQ(sh(run_cmd(dir / "teacher", "--set stages.0.steps=10")).rc, 0);
  const std::string g = "run tests/dist/dp_ki_grow.toml --plain --set nodes.teacher.load=" +
                        (dir / "teacher" / "model.safetensors").string() + " --out ";
  const Result plain = mpi(2, g + (dir / "plain").string());
  ASSERT_EQ(plain.rc, 0) << plain.out;
  const Result zero = mpi(2, g + (dir / "zero").string() + " --set run.zero=1");
  ASSERT_EQ(zero.rc, 0) << zero.out;
  const auto want = losses(dir / "plain");
  ASSERT_EQ(want.size(), 24u);
  EXPECT_EQ(losses(dir / "zero"), want);
  const fs::path part = rewound(dir / "zero", dir / "part", 12);
  const Result r = mpi(2, g + part.string() + " --set run.zero=1 --resume");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_EQ(losses(part), want);
  expect_same_optimizer_state(dir / "plain", part);
  fs::remove_all(dir);
}

// The methods' own paths under two ranks: the KI loss (a frozen teacher's forward on each
// rank's share) and a growth op between stages (every rank applies the same seeded op to the
// same weights), against one rank at twice the batch.
TEST(DataParallel, InheritanceAndGrowthUnderTwoRanksFollowOneRank) {
  const fs::path dir = temp("dp_ki_grow");
  ASSERT_EQ(sh(run_cmd(dir / "teacher", "--set stages.0.steps=10")).rc, 0);
  const std::string g = "run tests/dist/dp_ki_grow.toml --plain --set nodes.teacher.load=" +
                        (dir / "teacher" / "model.safetensors").string() + " --out ";
  const Result one = sh(g + (dir / "one").string() + " --set nodes.corpus.batch_size=8");
  ASSERT_EQ(one.rc, 0) << one.out;
  const Result two = mpi(2, g + (dir / "two").string());
  ASSERT_EQ(two.rc, 0) << two.out;
  const auto a = losses(dir / "one"), b = losses(dir / "two");
  ASSERT_EQ(a.size(), 24u);
  ASSERT_EQ(b.size(), 24u);
  EXPECT_LT(max_rel(a, b), 1e-5);
  // The grown student (width 64, 4 layers) is the same on both.
  const auto la = safetensors::load((dir / "one" / "student.safetensors").string());
  const auto lb = safetensors::load((dir / "two" / "student.safetensors").string());
  const std::map<std::string, Tensor> wa(la.tensors.begin(), la.tensors.end()), wb(lb.tensors.begin(), lb.tensors.end());
  EXPECT_EQ(wa.at("transformer.h.3.mlp.c_fc.weight").size(0), 64) << "grown to width 64 and 4 layers";
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& [k, t] : wa) {
    ASSERT_TRUE(wb.count(k)) << k;
    const auto x = t.to_vector(), y = wb.at(k).to_vector();
    ASSERT_EQ(x.size(), y.size()) << k;
    for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(x[i], y[i], 1e-4 * (1 + std::abs(x[i]))) << k << "[" << i << "]";
  }
  fs::remove_all(dir);
}

// data.mixture's dynamic batch loading under two ranks: the same windows as one rank at twice
// the batch (the training losses agree as the plain graph's do), and the weights, moved by the
// per-domain losses reduced over the ranks, agree with one rank's.
TEST(DataParallel, DynamicBatchLoadingUnderTwoRanksFollowsOneRank) {
  const fs::path dir = temp("dp_mixture");
  const std::string g = "run tests/dist/dp_mixture.toml --plain --out ";
  ASSERT_EQ(sh(g + (dir / "one").string() + " --set nodes.mix.batch_size=8").rc, 0);
  const Result two = mpi(2, g + (dir / "two").string());
  ASSERT_EQ(two.rc, 0) << two.out;
  const auto a = losses(dir / "one"), b = losses(dir / "two");
  ASSERT_EQ(a.size(), 20u);
  ASSERT_EQ(b.size(), 20u);
  EXPECT_LT(max_rel(a, b), 1e-5);
  int evals = 0;
  const auto one = metrics(dir / "one"), twos = metrics(dir / "two");
  ASSERT_EQ(one.size(), twos.size());
  for (size_t i = 0; i < one.size(); ++i) {
    if (!one[i].contains("mix/weight/news")) continue;
    ++evals;
    for (const char* d : {"mix/weight/news", "mix/weight/cs"})
      EXPECT_NEAR(json_number(twos[i].at(d)), json_number(one[i].at(d)), 1e-4) << d << " at line " << i;
  }
  EXPECT_EQ(evals, 4);
  fs::remove_all(dir);
}
