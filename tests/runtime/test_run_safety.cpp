// The run directory is the unit of safety (issue 17, part A): names that would leave the run
// root, one live run per directory, an earlier run's results never destroyed by a fresh one,
// the numerical guard, resume that verifies what it reads, and SIGINT/SIGTERM stops.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#include "runtime/executor.h"
#include "scion/checkpoint.h"
#include "scion/owned.h"
#include "scion/safetensors.h"
#include "in_process.h"

using namespace scion;
using namespace scion::runtime;
using namespace scion::tests;
namespace fs = std::filesystem;

namespace {
// Every file under `dir` with its contents.
std::map<std::string, std::string> tree(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = slurp(e.path());
  return out;
}

std::string graph(const std::string& run_extra = "", const std::string& stage_extra = "", int steps = 6) {
  return R"(
[run]
seed = 3
)" + run_extra + R"(
[nodes.data]
plugin = "test.synthetic"
[nodes.model]
plugin = "test.linear"
x = "data.x"
[nodes.loss]
plugin = "test.mse"
pred = "model.y"
target = "data.y"
[[stages]]
name = "fit"
steps = )" + std::to_string(steps) + R"(
train = ["model"]
losses = ["loss"]
checkpoint = { every = 2 }
)" + stage_extra;
}
// Plain gradient descent far past its stable step size: the loss grows ~2000x a step and
// overflows float within a few dozen updates.
const std::string kDiverging = R"(optimizer = { plugin = "optim.sgd", lr = 1000.0, clip = 0.0, decay = "constant" })";
}  // namespace

TEST(RunSafety, NamesThatWouldLeaveTheRunRootAreRefusedWhereTheyAre) {
  for (const std::string bad : {"../../x", "", "a/b", ".hidden", "/abs"}) {
    const std::string e = graph_error(graph("name = \"" + bad + "\""));
    EXPECT_NE(e.find("g.toml:4:8"), std::string::npos) << bad << ": " << e;
    EXPECT_NE(e.find("cannot name a run directory"), std::string::npos) << bad << ": " << e;
  }
  std::string g = graph();
  g.replace(g.find("[nodes.model]"), 13, "[nodes.\"/tmp/w\"]");
  g.replace(g.find("\"model.y\""), 9, "\"/tmp/w.y\"");
  std::string e = graph_error(g);
  EXPECT_NE(e.find("node name '/tmp/w' is not a plain name"), std::string::npos) << e;
  EXPECT_NE(e.find("g.toml:7:8"), std::string::npos) << e;
  EXPECT_EQ(graph_error(graph("name = \"ok-name_1.2\"")), "");
}

TEST(RunSafety, ASecondRunIntoALiveRunsDirectoryIsRefusedAndTouchesNothing) {
  const fs::path dir = temp("lock");
  run_graph(graph(), dir / "run");
  const auto before = tree(dir / "run");
  // A live run holds the lock (here: this test, as another process would).
  const int fd = ::open((dir / "run" / ".lock").c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX | LOCK_NB), 0);
  try {
    run_graph(graph(), dir / "run");
    FAIL() << "a second run into a locked directory ran";
  } catch (const RunDirectoryBusy& e) {
    EXPECT_NE(std::string(e.what()).find("is in use by another scion run"), std::string::npos) << e.what();
  }
  EXPECT_EQ(tree(dir / "run"), before);
  ::close(fd);  // the live run ends: the directory is free again
  run_graph(graph(), dir / "run", {}, /*resume=*/true);
  fs::remove_all(dir);
}

TEST(RunSafety, AFreshRunThatFailsEarlyHasDestroyedNothing) {
  const fs::path dir = temp("earlier");
  run_graph(graph(), dir / "run");
  const auto before = tree(dir / "run");
  // The same directory, a run that fails before its first checkpoint (it diverges; a NaN
  // learning rate would not even validate).
  std::string failing = graph("", kDiverging, 60);
  failing.replace(failing.find("checkpoint = { every = 2 }"), 26, "checkpoint = { every = 100 }");
  EXPECT_THROW(run_graph(failing, dir / "run"), NonFiniteError);
  // The earlier run's files are all there, byte for byte, moved to earlier/<time>/.
  ASSERT_TRUE(fs::is_directory(dir / "run" / "earlier"));
  const fs::path moved = fs::directory_iterator(dir / "run" / "earlier")->path();
  auto kept = before;
  kept.erase(".lock");
  kept.erase(owned::kMarkerFile);  // the folder stays Scion's: its marker is not a result
  EXPECT_EQ(tree(moved), kept);
  EXPECT_TRUE(owned::has_marker(dir / "run", "run"));
  EXPECT_FALSE(fs::exists(dir / "run" / "checkpoints"));  // the failed run wrote none
  fs::remove_all(dir);
}

TEST(RunSafety, ANonFiniteStepStopsBeforeTheOptimizerAndLeavesNoBrokenCheckpoint) {
  const fs::path dir = temp("nan");
  try {
    run_graph(graph("", kDiverging, 60), dir / "run");
    FAIL() << "a diverging run finished";
  } catch (const NonFiniteError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("stage 'fit'"), std::string::npos) << m;
    EXPECT_TRUE(m.find("loss term 'loss'") != std::string::npos || m.find("first in parameter 'model.") != std::string::npos)
        << m;
    EXPECT_NE(m.find("on_nonfinite"), std::string::npos) << m;  // the hint
  }
  // Every metrics line is strict JSON (no bare NaN), and every checkpoint left is finite.
  std::ifstream in(dir / "run" / "metrics.jsonl");
  int lines = 0;
  for (std::string l; std::getline(in, l); ++lines) EXPECT_TRUE(nlohmann::json::accept(l)) << l;
  EXPECT_GT(lines, 3);
  EXPECT_LT(lines, 60);
  for (const auto& e : fs::directory_iterator(dir / "run" / "checkpoints")) {
    if (!e.is_directory()) continue;
    for (const auto& [n, t] : safetensors::load((e.path() / "model.safetensors").string()).tensors)
      for (float v : t.to_vector()) EXPECT_TRUE(std::isfinite(v)) << e.path() << " " << n;
  }
  EXPECT_FALSE(fs::exists(dir / "run" / "model.safetensors"));  // no final weights of a broken run
  fs::remove_all(dir);
}

TEST(RunSafety, OnNonFiniteSkipCountsAndLogsTheSkippedSteps) {
  const fs::path dir = temp("skip");
  run_graph(graph("on_nonfinite = \"skip\"", kDiverging, 60), dir / "run");
  std::ifstream in(dir / "run" / "metrics.jsonl");
  int64_t skipped = 0, nulls = 0;
  for (std::string l; std::getline(in, l);) {
    const auto j = nlohmann::json::parse(l);  // strict: a skipped step's loss is null
    if (j.contains("skipped_steps")) skipped = j.at("skipped_steps").get<int64_t>();
    nulls += j.contains("loss") && j.at("loss").is_null();
  }
  EXPECT_GT(skipped, 0);
  EXPECT_GT(nulls, 0);
  for (const auto& [n, t] : safetensors::load((dir / "run" / "model.safetensors").string()).tensors)
    for (float v : t.to_vector()) EXPECT_TRUE(std::isfinite(v)) << n;
  fs::remove_all(dir);
}

TEST(RunSafety, ResumeVerifiesEveryFileTheCheckpointHolds) {
  const fs::path dir = temp("verify");
  const std::string g = graph("", "", 6);
  run_graph(g, dir / "full");
  auto resume_error = [&](const std::function<void(const fs::path& ck)>& damage) {
    fs::remove_all(dir / "r");
    fs::copy(dir / "full", dir / "r", fs::copy_options::recursive);
    fs::remove_all(dir / "r" / "checkpoints" / "step_6");  // resume from step_4: mid-stage
    std::ofstream(dir / "r" / "checkpoints" / "latest.json") << R"({"checkpoint": "step_4", "step": 4})";
    damage(dir / "r" / "checkpoints" / "step_4");
    try {
      run_graph(g, dir / "r", {}, true);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(resume_error([](const fs::path&) {}), "");  // undamaged: resumes
  std::string e = resume_error([](const fs::path& ck) {
    std::fstream f(ck / "model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(-2, std::ios::end);
    f.put('\x7f');
  });
  EXPECT_NE(e.find("model.safetensors' is corrupted"), std::string::npos) << e;
  e = resume_error([](const fs::path& ck) { fs::remove(ck / checkpoint::kOptimizerFile); });
  EXPECT_NE(e.find("optimizer.safetensors' is missing"), std::string::npos) << e;
  e = resume_error([&](const fs::path& ck) {  // another run's optimizer file
    fs::copy_file(dir / "full" / "checkpoints" / "step_6" / checkpoint::kOptimizerFile, ck / checkpoint::kOptimizerFile,
                  fs::copy_options::overwrite_existing);
  });
  EXPECT_NE(e.find("optimizer.safetensors' is corrupted"), std::string::npos) << e;
  e = resume_error([](const fs::path& ck) {
    std::string st = slurp(ck / "state.json");
    st.replace(st.find("\"stage_step\":4"), 14, "\"stage_step\":-5");
    std::ofstream(ck / "state.json") << st;
  });
  EXPECT_NE(e.find("stage_step = -5"), std::string::npos) << e;
  e = resume_error([](const fs::path& ck) {
    std::string st = slurp(ck / "state.json");
    st.replace(st.find("\"stage_step\":4"), 14, "\"stage_step\":99");
    std::ofstream(ck / "state.json") << st;
  });
  EXPECT_NE(e.find("which this graph (1 stages) does not have"), std::string::npos) << e;
  // latest.json lost: the newest complete checkpoint, not a fresh start.
  e = resume_error([&](const fs::path&) { fs::remove(dir / "r" / "checkpoints" / "latest.json"); });
  EXPECT_EQ(e, "");
  std::ifstream m(dir / "r" / "metrics.jsonl");
  int lines = 0;
  for (std::string l; std::getline(m, l);) ++lines;
  EXPECT_EQ(lines, 6);  // resumed at step 4 (its 4 lines kept), then 2 more: not restarted
  EXPECT_FALSE(fs::exists(dir / "r" / "earlier"));
  fs::remove_all(dir);
}

// SIGTERM (Slurm's preemption signal) with a real process: the step finishes, a checkpoint is
// written, the exit code is 128 + 15, and --resume continues on the uninterrupted curve.
TEST(RunSafety, SigtermWritesACheckpointAndResumeContinuesTheSameCurve) {
  const fs::path dir = temp("sigterm");
  std::string g = graph("", "", 40);
  g.replace(g.find("plugin = \"test.synthetic\""), 25, "plugin = \"test.synthetic\"\nsleep_ms = 20");
  g.replace(g.find("checkpoint = { every = 2 }"), 26, "checkpoint = { every = 100 }");
  std::ofstream(dir / "g.toml") << g;
  const std::string plugins = std::string(SCION_TEST_PLUGINS) + "/good";
  auto start = [&](const fs::path& out, bool resume) {
    const pid_t pid = ::fork();
    if (pid == 0) {
      const std::string file = (dir / "g.toml").string(), o = out.string();
      const int null = ::open("/dev/null", O_WRONLY);
      ::dup2(null, 1), ::dup2(null, 2);
      if (resume)
        ::execl(SCION_EXE, SCION_EXE, "run", file.c_str(), "--out", o.c_str(), "--plain", "--plugin-dir",
                plugins.c_str(), "--threads", "1", "--resume", (char*)nullptr);
      ::execl(SCION_EXE, SCION_EXE, "run", file.c_str(), "--out", o.c_str(), "--plain", "--plugin-dir",
              plugins.c_str(), "--threads", "1", (char*)nullptr);
      _exit(127);
    }
    return pid;
  };
  auto wait_rc = [](pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return status;
  };
  auto lines = [](const fs::path& run) {
    std::vector<std::string> out;
    std::ifstream in(run / "metrics.jsonl");
    for (std::string l; std::getline(in, l);) {
      auto j = nlohmann::json::parse(l);
      j.erase("tokens_per_s"), j.erase("elapsed_s");
      out.push_back(j.dump());
    }
    return out;
  };
  int st = wait_rc(start(dir / "full", false));
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);

  const pid_t pid = start(dir / "part", false);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {  // a few updates in
    if (fs::exists(dir / "part" / "metrics.jsonl") && lines(dir / "part").size() >= 5) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ::kill(pid, SIGTERM);
  st = wait_rc(pid);
  ASSERT_TRUE(WIFEXITED(st)) << "killed by the signal instead of stopping";
  EXPECT_EQ(WEXITSTATUS(st), 128 + SIGTERM);
  const auto part = lines(dir / "part");
  ASSERT_LT(part.size(), 40u);
  EXPECT_TRUE(fs::exists(dir / "part" / "checkpoints" / ("step_" + std::to_string(part.size()))));
  st = wait_rc(start(dir / "part", true));
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0);
  EXPECT_EQ(lines(dir / "part"), lines(dir / "full"));

  // A second signal stops at once (the default action), without waiting for the step.
  const pid_t p2 = start(dir / "twice", false);
  while (!fs::exists(dir / "twice" / "metrics.jsonl")) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ::kill(p2, SIGINT);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));  // within the step (its data read sleeps 20 ms)
  ::kill(p2, SIGINT);
  st = wait_rc(p2);
  EXPECT_TRUE(WIFSIGNALED(st) && WTERMSIG(st) == SIGINT) << "status " << st;
  fs::remove_all(dir);
}
