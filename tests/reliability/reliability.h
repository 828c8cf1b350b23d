// Shared by the reliability tests: a tiny trainable graph (bytes tokenizer, a one-layer GPT,
// the bundled news corpus) whose lines the tests edit, and the CLI run in the source tree.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "fixtures.h"
#include "scion/shards.h"
#include "scion_cli.h"

namespace reliability {

inline std::string news(const char* file) { return std::string(SCION_SOURCE_DIR) + "/data/corpus/news/" + file; }

// Line numbers matter to the tests below.
inline std::string tiny_graph() {
  return tiny_gpt_graph(
      {.head = "[run]\nname = \"tiny\"\ndevice = \"cpu\"\nthreads = 1\n\n",
       .corpus = {.files = news("train.txt"), .valid_files = news("valid.txt")},
       .model = {.name = "student"},
       .nodes = "[nodes.ppl]\nplugin = \"eval.ppl\"\nmodel = \"student\"\ndata = [\"corpus\"]\nmax_batches = 1\n",
       .stages = R"([[stages]]
name = "train"
steps = 1
train = ["student"]
losses = ["lm"]
eval = { every = 1, evaluators = ["ppl"] }
)"});
}

inline std::string edit(std::string s, const std::string& from, const std::string& to) {
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

inline int exit_code(const Result& r) { return WIFEXITED(r.rc) ? WEXITSTATUS(r.rc) : -1; }

// Every file under `dir` (recursively), for "nothing was written" checks.
inline std::vector<std::string> listing(const fs::path& dir) {
  std::vector<std::string> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) out.push_back(e.path().lexically_relative(dir).string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace reliability
