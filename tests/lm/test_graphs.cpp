// The shipped graphs and commands, end to end through the real `scion` executable, run from
// the source tree (graph paths are relative to it).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "scion/json.h"
#include "scion/safetensors.h"
#include "scion/shards.h"

namespace fs = std::filesystem;
using namespace scion;

namespace {

struct Result {
  int rc;
  std::string out;
};

Result sh(const std::string& args) {
  const std::string cmd = std::string("cd ") + SCION_SOURCE_DIR + " && " + SCION_EXE + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (p && std::fgets(buf, sizeof buf, p)) out += buf;
  const int rc = p ? ::pclose(p) : -1;
  return {rc, out};
}

fs::path temp(const std::string& tag) {
  fs::path p = fs::temp_directory_path() / ("scion_lmg_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

std::vector<Json> metrics(const fs::path& run) {
  std::ifstream in(run / "metrics.jsonl");
  std::vector<Json> out;
  std::string l;
  while (std::getline(in, l)) out.push_back(Json::parse(l));
  return out;
}

}  // namespace

TEST(Graphs, EveryShippedGraphValidates) {
  for (const auto& f : fs::directory_iterator(fs::path(SCION_SOURCE_DIR) / "graphs")) {
    if (f.path().extension() != ".toml") continue;
    std::string args = "validate " + f.path().string();
    // ki_gpt's teacher comes from a gpt_pretrain run; any existing checkpoint stands in.
    if (f.path().stem() == "ki_gpt") {
      const fs::path d = temp("kiv");
      safetensors::save((d / "t.safetensors").string(), {{"transformer.wte.weight", Tensor::zeros({2, 2})}});
      args += " --set nodes.teacher.load=" + (d / "t.safetensors").string();
    }
    const Result r = sh(args);
    EXPECT_EQ(r.rc, 0) << f.path() << "\n" << r.out;
  }
}

TEST(Graphs, GptPretrainLowersValidationPerplexity) {
  const fs::path d = temp("gpt");
  const Result r = sh("run graphs/gpt_pretrain.toml --plain --out " + d.string() +
                      " --set stages.0.steps=60 --set stages.0.eval.every=20 --set stages.0.optimizer.warmup=10"
                      " --set nodes.student.layers=2 --set nodes.student.width=64");
  ASSERT_EQ(r.rc, 0) << r.out;
  std::vector<double> ppl;
  for (const Json& m : metrics(d))
    if (m.contains("ppl/ppl")) ppl.push_back(m.at("ppl/ppl").as_number());
  ASSERT_EQ(ppl.size(), 3u);
  // Measured: 20810 -> 8064 between steps 20 and 60; the stated margin is 40% lower.
  EXPECT_LT(ppl.back(), 0.6 * ppl.front());
  for (const char* domain : {"reference", "news", "literature", "biomedical", "cs"})
    EXPECT_TRUE(metrics(d).back().contains(std::string("ppl/") + domain + "/ppl")) << domain;

  // scion eval: per-domain perplexity of the saved model, as JSON.
  const Result ev = sh("eval graphs/gpt_pretrain.toml --checkpoint " + (d / "student.safetensors").string() +
                       " --set nodes.student.layers=2 --set nodes.student.width=64");
  ASSERT_EQ(ev.rc, 0) << ev.out;
  const Json j = Json::parse(ev.out.substr(ev.out.find('{')));
  EXPECT_NEAR(j.at("ppl").at("ppl").as_number(), ppl.back(), 1e-3 * ppl.back());
  EXPECT_TRUE(j.at("ppl").contains("news/ppl"));

  // scion generate: a continuation of the prompt.
  const Result gen = sh("generate --checkpoint " + (d / "student.safetensors").string() +
                        " --prompt \"The history of\" --max-tokens 8 --seed 3");
  ASSERT_EQ(gen.rc, 0) << gen.out;
  EXPECT_EQ(gen.out.rfind("The history of", 0), 0u) << gen.out;
  EXPECT_GT(gen.out.size(), std::string("The history of\n").size());

  // A checkpoint whose shapes do not fit the model (weights without Scion's config metadata,
  // as a file from elsewhere): the error names the key and both shapes.
  const std::string stripped = (d / "no_config.safetensors").string();
  safetensors::save(stripped, safetensors::load((d / "student.safetensors").string()).tensors);
  const Result bad = sh("eval graphs/gpt_pretrain.toml --checkpoint " + stripped);
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.out.find("transformer.wte.weight"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("[50257, 64]"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("[50257, 128]"), std::string::npos) << bad.out;
  fs::remove_all(d);
}

TEST(Graphs, TokenizeWritesShardsThatTrain) {
  const fs::path d = temp("tok");
  const Result t = sh("tokenize data/corpus/news/valid.txt --out " + (d / "news.bin").string());
  ASSERT_EQ(t.rc, 0) << t.out;
  shards::ShardReader r((d / "news.bin").string());
  EXPECT_GT(r.size(), 1000);
  EXPECT_EQ(r[r.size() - 1], 50256);  // end of text after the file
  std::ofstream(d / "g.toml") << R"(
[nodes.data]
plugin = "data.shards"
files = [")" + (d / "news.bin").string() + R"("]
seq_len = 32
batch_size = 2
[nodes.model]
plugin = "model.gpt"
vocab = 50257
context = 32
layers = 1
width = 32
heads = 2
tokens = "data.tokens"
[nodes.lm]
plugin = "loss.lm"
logits = "model.logits"
targets = "data.targets"
[[stages]]
steps = 3
train = ["model"]
losses = ["lm"]
)";
  const Result run = sh("run " + (d / "g.toml").string() + " --plain --out " + (d / "run").string());
  EXPECT_EQ(run.rc, 0) << run.out;
  EXPECT_EQ(metrics(d / "run").size(), 3u);
  fs::remove_all(d);
}

TEST(Graphs, GrowthGraphChangesTheModelBetweenStages) {
  const fs::path d = temp("grow");
  const Result r = sh("run graphs/grow_bert2bert.toml --plain --out " + d.string() +
                      " --set stages.0.steps=4 --set stages.1.steps=4 --set stages.2.steps=4");
  ASSERT_EQ(r.rc, 0) << r.out;
  auto w = safetensors::load((d / "bert.safetensors").string());
  bool found = false;
  for (const auto& [n, t] : w.tensors)
    if (n == "bert.encoder.layer.3.intermediate.dense.weight") {
      found = true;
      EXPECT_EQ(t.shape(), (Shape{512, 128}));
    }
  EXPECT_TRUE(found) << "the grown model has 4 layers of width 128";
  fs::remove_all(d);
}
