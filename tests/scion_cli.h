// Helpers for tests that drive the real `scion` executable from the source tree (graph paths
// are relative to it) and read what its runs wrote.
#pragma once
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "scion/checkpoint.h"
#include "scion/json.h"
#include "scion/safetensors.h"

namespace fs = std::filesystem;
using namespace scion;

struct Result {
  int rc;
  std::string out;  // stdout and stderr
};

// Runs `scion ARGS` in the source tree.
inline Result sh(const std::string& args) {
  const std::string cmd = std::string("cd ") + SCION_SOURCE_DIR + " && " + SCION_EXE + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (p && std::fgets(buf, sizeof buf, p)) out += buf;
  const int rc = p ? ::pclose(p) : -1;
  return {rc, out};
}

// A fresh, empty folder of this test process.
inline fs::path temp(const std::string& tag) {
  fs::path p = fs::temp_directory_path() / ("scion_lmg_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// Every line of a run's metrics.jsonl.
inline std::vector<Json> metrics(const fs::path& run) {
  std::ifstream in(run / "metrics.jsonl");
  std::vector<Json> out;
  std::string l;
  while (std::getline(in, l)) out.push_back(json_parse(l));
  return out;
}

// The optimizer state of a run's newest checkpoint, by "<node>.<param>.<what>".
inline std::map<std::string, Tensor> last_optimizer_state(const fs::path& run) {
  std::ifstream lf(run / "checkpoints" / checkpoint::kLatestFile);
  const std::string text((std::istreambuf_iterator<char>(lf)), {});
  const fs::path dir = run / "checkpoints" / json_string(json_parse(text).at(checkpoint::kLatestCheckpoint));
  auto st = safetensors::load((dir / checkpoint::kOptimizerFile).string());
  return {st.tensors.begin(), st.tensors.end()};
}
