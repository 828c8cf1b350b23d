// Helpers for tests that drive the real `scion` executable from the source tree (graph paths
// are relative to it) and read what its runs wrote.
#pragma once
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "scion/checkpoint.h"
#include "scion/json.h"
#include "scion/safetensors.h"
#include "test_files.h"

namespace fs = std::filesystem;
using namespace scion;
using namespace scion::tests;

struct Result {
  int rc;
  std::string out;  // stdout and stderr
};

// Runs `scion ARGS` in the source tree; `env`: assignments put before it ("NAME=value ...").
inline Result sh(const std::string& args, const std::string& env = "") {
  const std::string cmd = std::string("cd ") + SCION_SOURCE_DIR + " && " + env + " " + SCION_EXE + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (p && std::fgets(buf, sizeof buf, p)) out += buf;
  const int rc = p ? ::pclose(p) : -1;
  return {rc, out};
}

// The optimizer state of a run's newest checkpoint, by "<node>.<param>.<what>".
inline std::map<std::string, Tensor> last_optimizer_state(const fs::path& run) {
  std::ifstream lf(run / "checkpoints" / checkpoint::kLatestFile);
  const std::string text((std::istreambuf_iterator<char>(lf)), {});
  const fs::path dir = run / "checkpoints" / json_string(json_parse(text).at(checkpoint::kLatestCheckpoint));
  auto st = safetensors::load((dir / checkpoint::kOptimizerFile).string());
  return {st.tensors.begin(), st.tensors.end()};
}

// `scion run ARGS --plain`, its output discarded; the exit status as std::system gives it.
inline int run_scion(const std::string& args) {
  return std::system((std::string(SCION_EXE) + " run " + args + " --plain > /dev/null 2>&1").c_str());
}

// Starts `scion run GRAPH --out OUT --plain` and kills it (SIGKILL) as soon as its checkpoint
// of update `step` exists. False when the run finished before it could be killed.
inline bool run_killed_after_checkpoint(const std::string& graph, const fs::path& out, int step) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::execl(SCION_EXE, SCION_EXE, "run", graph.c_str(), "--out", out.c_str(), "--plain", (char*)nullptr);
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  const fs::path mark = out / "checkpoints" / ("step_" + std::to_string(step));
  while (!fs::exists(mark) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFSIGNALED(status);
}
