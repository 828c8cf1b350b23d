// Preemption with real processes (docs/reliability.md, "Signals and preemption"): a training
// run signalled at many moments of its steps (most of a step is oneDNN GEMMs) stops after the
// update in progress with a checkpoint and exit 128 + signal, every time, and the chain of
// resumed runs ends on the uninterrupted step count, each update logged once. The same under
// two mpirun ranks: both ranks signalled (as srun does), one rank signalled, and mpirun itself
// signalled with the grace setting docs/distributed.md gives.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <map>
#include <sstream>
#include <thread>

#include "scion_cli.h"

namespace {
using Clock = std::chrono::steady_clock;
const std::string kGraph = "tests/reliability/preempt_gpt.toml";
constexpr int kSteps = 24;
// Two ranks stopped through mpirun's grace keep training for the grace (8 s) before their
// SIGTERM: the run must outlast it on a fast machine (about 0.15 s a step on this one's cores).
constexpr int kTwoRankSteps = 200;

// Starts `argv` in the source tree, its output to `log`, in a process group of its own.
pid_t launch(const std::vector<std::string>& argv, const fs::path& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    if (::chdir(SCION_SOURCE_DIR) != 0) _exit(126);
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    ::dup2(fd, 1), ::dup2(fd, 2);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    _exit(127);
  }
  return pid;
}

// The wait status, or -1 when the process group had to be killed after `limit`.
int wait_for(pid_t pid, std::chrono::seconds limit) {
  const auto end = Clock::now() + limit;
  int status = 0;
  while (Clock::now() < end) {
    if (::waitpid(pid, &status, WNOHANG) == pid) return status;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(-pid, SIGKILL);
  ::waitpid(pid, &status, 0);
  return -1;
}

// Complete lines of metrics.jsonl (one per update).
size_t updates(const fs::path& run) {
  const std::string text = slurp(run / "metrics.jsonl");
  return size_t(std::count(text.begin(), text.end(), '\n'));
}

bool wait_updates(const fs::path& run, size_t n, std::chrono::seconds limit) {
  const auto end = Clock::now() + limit;
  while (Clock::now() < end) {
    if (updates(run) >= n) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

std::vector<std::string> scion_run(const fs::path& out, bool resume, const std::string& extra = "", int steps = kSteps) {
  std::vector<std::string> a{SCION_EXE, "run", kGraph, "--plain", "--out", out.string(), "--set",
                             "stages.0.steps=" + std::to_string(steps)};
  if (!extra.empty()) a.insert(a.end(), {"--set", extra});
  if (resume) a.push_back("--resume");
  return a;
}

// mpirun, or with `grace` scripts/mpirun.sh (mpirun with odls_base_sigkill_timeout), which
// execs mpirun in the same process.
std::vector<std::string> under_mpirun(const std::vector<std::string>& options, std::vector<std::string> cmd,
                                      bool grace = false) {
  std::vector<std::string> a{SCION_MPIRUN};
  if (grace) a = {"env", "MPIRUN=" SCION_MPIRUN, "SCION_STOP_GRACE_S=8", "scripts/mpirun.sh"};
  a.insert(a.end(), {"--allow-run-as-root", "--oversubscribe"});
  a.insert(a.end(), options.begin(), options.end());
  a.insert(a.end(), {"-np", "2"});
  a.insert(a.end(), cmd.begin(), cmd.end());
  return a;
}

// mpirun's ranks by rank (its children, told apart by OMPI_COMM_WORLD_RANK).
std::map<int, pid_t> ranks_of(pid_t mpirun) {
  std::map<int, pid_t> out;
  const auto end = Clock::now() + std::chrono::seconds(30);
  while (out.size() < 2 && Clock::now() < end) {
    out.clear();
    for (const auto& e : fs::directory_iterator("/proc")) {
      const std::string name = e.path().filename();
      if (name.find_first_not_of("0123456789") != std::string::npos) continue;
      const std::string stat = slurp(e.path() / "stat");
      const size_t close = stat.rfind(')');
      if (close == std::string::npos) continue;
      int ppid = 0;
      char state = 0;
      if (std::sscanf(stat.c_str() + close + 1, " %c %d", &state, &ppid) != 2 || ppid != mpirun) continue;
      const std::string env = slurp(e.path() / "environ");
      const size_t at = env.find("OMPI_COMM_WORLD_RANK=");
      if (at != std::string::npos) out[std::stoi(env.substr(at + 21))] = pid_t(std::stoi(name));
    }
    if (out.size() < 2) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return out;
}

void expect_each_update_once(const fs::path& run, int steps = kSteps) {
  const auto m = metrics(run);
  ASSERT_EQ(m.size(), size_t(steps));
  for (size_t i = 0; i < m.size(); ++i) EXPECT_EQ(json_number(m[i].at("step")), double(i + 1)) << "line " << i;
}
}  // namespace

// One process, signalled at a spread of moments into a step (the first update of each resumed
// run is done, so the signal lands in the next one's forward, backward or optimizer step).
TEST(Preemption, SignalsAtManyMomentsStopWithACheckpointAndResume) {
  const fs::path dir = temp("preempt_one"), run = dir / "run", log = dir / "log";
  const int offsets_ms[] = {0, 30, 70, 110, 160, 220, 290};
  size_t before = 0;
  int stops = 0;
  for (size_t k = 0; k < std::size(offsets_ms) && before < size_t(kSteps) - 2; ++k) {
    const int sig = k % 2 ? SIGINT : SIGTERM;
    const pid_t pid = launch(scion_run(run, k > 0), log);
    ASSERT_TRUE(wait_updates(run, before + 1, std::chrono::seconds(120))) << slurp(log);
    std::this_thread::sleep_for(std::chrono::milliseconds(offsets_ms[k]));
    ::kill(pid, sig);
    const int st = wait_for(pid, std::chrono::seconds(60));
    ASSERT_TRUE(WIFEXITED(st)) << "signal " << sig << " after " << offsets_ms[k] << " ms: status " << st << "\n"
                               << slurp(log);
    const size_t now = updates(run);
    if (WEXITSTATUS(st) == 0) break;  // finished before the signal
    ASSERT_EQ(WEXITSTATUS(st), 128 + sig) << slurp(log);
    EXPECT_TRUE(fs::exists(run / "checkpoints" / ("step_" + std::to_string(now)))) << "the stop checkpoint";
    EXPECT_GT(now, before);
    before = now;
    ++stops;
  }
  EXPECT_GE(stops, 5);
  const int st = wait_for(launch(scion_run(run, true), log), std::chrono::seconds(600));
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << slurp(log);
  expect_each_update_once(run);
  fs::remove_all(dir);
}

// Two ranks: SIGTERM to both ranks (srun's way), to rank 1 alone (the flag is reduced, rank 0
// writes the checkpoint), then to mpirun started by scripts/mpirun.sh (odls_base_sigkill_timeout
// 8: mpirun sends SIGCONT, waits 8 s, sends SIGTERM, waits 8 s again, then SIGKILL; a loaded
// machine's steps take seconds): every time
// the stop checkpoint is written and the next run resumes from it.
TEST(Preemption, TwoRanksStopTogetherWhoeverIsSignalled) {
  const fs::path dir = temp("preempt_two"), run = dir / "run", log = dir / "log";
  const std::string one_thread = "run.threads=1";
  size_t before = 0;
  for (int k = 0; k < 3; ++k) {
    const pid_t mpirun = launch(under_mpirun({}, scion_run(run, k > 0, one_thread, kTwoRankSteps), k == 2), log);
    const auto ranks = ranks_of(mpirun);
    ASSERT_EQ(ranks.size(), 2u) << slurp(log);
    ASSERT_TRUE(wait_updates(run, before + 1, std::chrono::seconds(120))) << slurp(log);
    std::this_thread::sleep_for(std::chrono::milliseconds(50 * k));
    if (k == 0) ::kill(ranks.at(0), SIGTERM), ::kill(ranks.at(1), SIGTERM);
    if (k == 1) ::kill(ranks.at(1), SIGTERM);
    if (k == 2) ::kill(mpirun, SIGTERM);
    const int st = wait_for(mpirun, std::chrono::seconds(60));
    ASSERT_NE(st, -1) << "mpirun did not end\n" << slurp(log);
    const size_t now = updates(run);
    ASSERT_LT(now, size_t(kTwoRankSteps)) << "finished before the signal";
    EXPECT_NE(slurp(log).find("stopped: SIGTERM at step " + std::to_string(now)), std::string::npos) << slurp(log);
    EXPECT_TRUE(fs::exists(run / "checkpoints" / ("step_" + std::to_string(now)))) << slurp(log);
    EXPECT_GT(now, before);
    before = now;
  }
  const int st = wait_for(launch(under_mpirun({}, scion_run(run, true, one_thread, kTwoRankSteps)), log),
                          std::chrono::seconds(600));
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << slurp(log);
  expect_each_update_once(run, kTwoRankSteps);
  fs::remove_all(dir);
}

namespace {
// Whether `pid` has ended (gone, or a zombie no one reaps yet).
bool ended(pid_t pid) {
  const std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
  const size_t close = stat.rfind(')');
  return close == std::string::npos || stat.compare(close + 2, 1, "Z") == 0;
}
bool all_end(const std::map<int, pid_t>& ranks, std::chrono::seconds limit) {
  const auto end = Clock::now() + limit;
  for (;;) {
    bool all = true;
    for (const auto& [r, pid] : ranks) all = all && ended(pid);
    if (all) return true;
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}
}  // namespace

// mpirun killed outright (SIGKILL: nothing forwarded): the ranks find their launcher gone
// within a tenth of a second and stop after the update with a checkpoint, or OpenMPI aborts
// them first when it finds its PMIx connection lost (exit 195, about a second later); either
// way they end, and latest.json names a complete checkpoint (a torn one is never named).
TEST(Preemption, RanksOfAKilledMpirunEnd) {
  const fs::path dir = temp("preempt_orphans"), run = dir / "run", log = dir / "log";
  const pid_t mpirun = launch(under_mpirun({}, scion_run(run, false, "run.threads=1")), log);
  const auto ranks = ranks_of(mpirun);
  ASSERT_EQ(ranks.size(), 2u) << slurp(log);
  ASSERT_TRUE(wait_updates(run, 2, std::chrono::seconds(120))) << slurp(log);
  ::kill(mpirun, SIGKILL);
  ::waitpid(mpirun, nullptr, 0);
  const bool gone = all_end(ranks, std::chrono::seconds(30));
  if (!gone)
    for (const auto& [r, pid] : ranks) ::kill(pid, SIGKILL);
  ASSERT_TRUE(gone) << "the ranks of a killed mpirun kept running";
  const size_t now = updates(run);
  ASSERT_LT(now, size_t(kSteps));
  if (!fs::exists(run / "checkpoints" / ("step_" + std::to_string(now))))
    std::printf("note: OpenMPI ended the ranks before their stop checkpoint (update %zu)\n", now);
  // latest.json, where there is one, names a complete checkpoint (written before its rename).
  const fs::path latest = run / "checkpoints" / checkpoint::kLatestFile;
  if (fs::exists(latest)) {
    const std::string name = json_string(json_parse(slurp(latest)).at(checkpoint::kLatestCheckpoint));
    EXPECT_TRUE(fs::exists(run / "checkpoints" / name / checkpoint::kStateFile)) << name;
  }
  fs::remove_all(dir);
}

// A rank that stops responding (SIGSTOP): the other's collective gives up after
// SCION_COLLECTIVE_TIMEOUT_S, sleeping rather than spinning while it waits, names the rank,
// and the job ends.
TEST(Preemption, ACollectiveWithAStoppedRankTimesOutNamingIt) {
  const fs::path dir = temp("preempt_stalled"), run = dir / "run", log = dir / "log";
  ::setenv("SCION_COLLECTIVE_TIMEOUT_S", "4", 1);
  const pid_t mpirun =
      launch(under_mpirun({"-x", "SCION_COLLECTIVE_TIMEOUT_S"}, scion_run(run, false, "run.threads=1")), log);
  ::unsetenv("SCION_COLLECTIVE_TIMEOUT_S");
  const auto ranks = ranks_of(mpirun);
  ASSERT_EQ(ranks.size(), 2u) << slurp(log);
  ASSERT_TRUE(wait_updates(run, 2, std::chrono::seconds(120))) << slurp(log);
  ::kill(ranks.at(1), SIGSTOP);
  const auto cpu_ticks = [](pid_t pid) {  // utime + stime of the whole process
    const std::string stat = slurp("/proc/" + std::to_string(pid) + "/stat");
    std::istringstream in(stat.substr(stat.rfind(')') + 2));
    std::string f;
    long long t = 0;
    for (int i = 3; i <= 15 && in >> f; ++i)
      if (i >= 14) t += std::stoll(f);
    return t;
  };
  // Rank 0 waits in a collective: after its first millisecond it sleeps (ticks are 10 ms).
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  const long long t0 = cpu_ticks(ranks.at(0));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  const long long used = cpu_ticks(ranks.at(0)) - t0;
  const int st = wait_for(mpirun, std::chrono::seconds(60));
  for (const auto& [r, pid] : ranks) ::kill(pid, SIGKILL);
  ASSERT_NE(st, -1) << "the job did not end\n" << slurp(log);
  EXPECT_FALSE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  EXPECT_NE(slurp(log).find("error: mpi: rank 0: MPI_I"), std::string::npos) << slurp(log);
  EXPECT_NE(slurp(log).find("has not completed in 4 s: rank 1 stopped responding"), std::string::npos) << slurp(log);
  EXPECT_LT(used, 50) << "rank 0 used " << used << " ticks of CPU in 1.5 s while waiting";
  fs::remove_all(dir);
}
