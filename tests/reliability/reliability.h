// Shared by the reliability tests: a tiny trainable graph (bytes tokenizer, a one-layer GPT,
// the bundled news corpus) whose lines the tests edit, and the CLI run in the source tree.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>

#include "scion/shards.h"
#include "scion_cli.h"

namespace reliability {

inline std::string news(const char* file) { return std::string(SCION_SOURCE_DIR) + "/data/corpus/news/" + file; }

// Line numbers matter to the tests below.
inline std::string tiny_graph() {
  return R"([run]
name = "tiny"
device = "cpu"
threads = 1

[nodes.tok]
plugin = "tokenizer.bytes"

[nodes.corpus]
plugin = "data.text"
tokenizer = "tok"
files = [")" + news("train.txt") + R"("]
valid_files = [")" + news("valid.txt") + R"("]
seq_len = 16
batch_size = 2

[nodes.student]
plugin = "model.gpt"
vocab = 257
context = 16
layers = 1
width = 16
heads = 2
tokens = "corpus.tokens"

[nodes.lm]
plugin = "loss.lm"
logits = "student.logits"
targets = "corpus.targets"

[nodes.ppl]
plugin = "eval.ppl"
model = "student"
data = ["corpus"]
max_batches = 1

[[stages]]
name = "train"
steps = 1
train = ["student"]
losses = ["lm"]
eval = { every = 1, evaluators = ["ppl"] }
)";
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
