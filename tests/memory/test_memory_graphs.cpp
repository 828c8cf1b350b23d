// The memory graphs through the real `scion` executable: a short TrimeLM run, a datastore and
// kNN-LM evaluation of its checkpoint, and the refusals the issue names (λ outside [0, 1], k
// larger than the datastore, a datastore built by another model, TRIME fed the wrong tensor).
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "scion_cli.h"

namespace {

class MemoryGraphs : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(temp("memory"));
    // Two short runs of different seeds: two different models with the same architecture.
    for (const char* seed : {"17", "18"}) {
      const fs::path out = *dir_ / (std::string("run") + seed);
      Result r = sh("run graphs/trime_gpt.toml --threads 1 --out " + out.string() + " --set run.seed=" + seed +
                    " --set stages.0.steps=3 --set nodes.trime.ce_warmup=1 --set stages.0.eval.every=0"
                    " --set nodes.ppl.max_batches=1 --set nodes.ppl.mem_size=64");
      ASSERT_EQ(r.rc, 0) << r.out;
    }
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string ckpt(const char* seed) { return (*dir_ / (std::string("run") + seed) / "student.safetensors").string(); }
  static std::string store() { return (*dir_ / "dstore").string(); }
  // scion eval of graphs/knnlm_gpt.toml over a small datastore of run 17's model.
  static Result eval(const std::string& checkpoint, const std::string& extra) {
    return sh("eval graphs/knnlm_gpt.toml --checkpoint " + checkpoint + " --set run.threads=1 --set nodes.dstore.path='\"" +
              store() + "\"' --set nodes.knn.datastore='\"" + store() + "\"' --set nodes.dstore.max_tokens=2048"
              " --set nodes.dstore.progress=false --set nodes.knn.max_batches=1 --set nodes.knn.k=16 " + extra);
  }
  static fs::path* dir_;
};
fs::path* MemoryGraphs::dir_ = nullptr;

TEST_F(MemoryGraphs, DatastoreAndKnnLmWithLambdaZeroEqualThePlainLm) {
  Result r = eval(ckpt("17"), "--set nodes.knn.lambda=0 --set nodes.knn.memory='\"none\"'");
  ASSERT_EQ(r.rc, 0) << r.out;
  const Json j = json_parse(r.out.substr(r.out.find('{')));
  EXPECT_EQ(json_number(j.at("dstore").at("keys")), 2048.0);
  for (const char* d : {"news", "cs", "reference"})
    EXPECT_DOUBLE_EQ(json_number(j.at("knn").at(std::string(d) + "/ppl")), json_number(j.at("knn").at(std::string(d) + "/lm_ppl")));
  EXPECT_TRUE(fs::exists(fs::path(store()) / "manifest.json"));
  // With λ > 0 the neighbours change the perplexity.
  Result r2 = eval(ckpt("17"), "--set nodes.knn.lambda=0.5 --set nodes.knn.memory='\"none\"'");
  ASSERT_EQ(r2.rc, 0) << r2.out;
  const Json j2 = json_parse(r2.out.substr(r2.out.find('{')));
  EXPECT_NE(json_number(j2.at("knn").at("news/ppl")), json_number(j2.at("knn").at("news/lm_ppl")));
  EXPECT_GT(json_number(j2.at("knn").at("knn_queries_per_s")), 0);
}

// max_tokens is "at most": not rounded up to whole windows, with sliding windows too; the
// sliding-window evaluation runs end to end.
TEST_F(MemoryGraphs, MaxTokensIsExactAndSlidingWindowsRun) {
  for (const char* stride : {"0", "64"}) {
    Result r = eval(ckpt("17"), std::string("--set nodes.dstore.max_tokens=200 --set nodes.dstore.stride=") + stride +
                                    " --set nodes.knn.stride=" + stride + " --set nodes.knn.memory='\"long\"'");
    ASSERT_EQ(r.rc, 0) << r.out;
    const Json j = json_parse(r.out.substr(r.out.find('{')));
    EXPECT_EQ(json_number(j.at("dstore").at("keys")), 200.0) << "stride " << stride;
    EXPECT_TRUE(std::isfinite(json_number(j.at("knn").at("ppl"))));
  }
}

// kNN-LM's similarity: q·k / knn_temp by default (TRIME's --interp-temp, no √d); knn_sqrt_d
// divides by √d first, so it equals the default at knn_temp · √d (trime_gpt's width: d = 128).
TEST_F(MemoryGraphs, KnnTemperatureIsTrimesInterpTempAndKnnSqrtDConvertsIt) {
  auto ppl = [&](const std::string& extra) {
    Result r = eval(ckpt("17"), "--set nodes.knn.lambda=0.5 --set nodes.knn.memory='\"none\"' " + extra);
    EXPECT_EQ(r.rc, 0) << r.out;
    return json_number(json_parse(r.out.substr(r.out.find('{'))).at("knn").at("news/ppl"));
  };
  const double scaled = ppl("--set nodes.knn.knn_sqrt_d=true --set nodes.knn.knn_temp=1.0");
  const double converted = ppl("--set nodes.knn.knn_sqrt_d=false --set nodes.knn.knn_temp=" + std::to_string(std::sqrt(128.0)));
  const double plain = ppl("--set nodes.knn.knn_sqrt_d=false --set nodes.knn.knn_temp=1.0");
  EXPECT_NEAR(converted, scaled, 1e-6 * scaled);
  EXPECT_GT(std::fabs(plain - scaled), 1e-3 * scaled) << "the √d changes the neighbours' distribution";
}

TEST_F(MemoryGraphs, RefusesLambdaOutsideZeroOne) {
  Result r = sh("validate graphs/knnlm_gpt.toml --set nodes.knn.lambda=1.5");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("lambda"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[0, 1]"), std::string::npos) << r.out;
}

TEST_F(MemoryGraphs, RefusesKLargerThanTheStoreAndAnotherModelsStore) {
  Result built = eval(ckpt("17"), "--set nodes.knn.lambda=0.25");
  ASSERT_EQ(built.rc, 0) << built.out;
  // The datastore exists: with no builder for that path in the graph, validation checks k.
  Result k = sh("validate graphs/knnlm_gpt.toml --set nodes.knn.datastore='\"" + store() + "\"' --set nodes.knn.k=5000");
  EXPECT_NE(k.rc, 0);
  // The value came from the command line, so the error is placed there.
  EXPECT_NE(k.out.find("--set nodes.knn.k=5000: error:"), std::string::npos) << k.out;
  EXPECT_NE(k.out.find("holds 2048 keys"), std::string::npos) << k.out;
  // Run 18's model on run 17's datastore (not rebuilt: the builder writes elsewhere).
  Result other = sh("eval graphs/knnlm_gpt.toml --checkpoint " + ckpt("18") + " --set run.threads=1"
                    " --set nodes.dstore.path='\"" + store() + ".unused\"' --set nodes.dstore.max_tokens=256"
                    " --set nodes.dstore.progress=false --set nodes.knn.datastore='\"" + store() + "\"'"
                    " --set nodes.knn.max_batches=1 --set nodes.knn.k=16");
  EXPECT_NE(other.rc, 0);
  EXPECT_NE(other.out.find("built by a different model"), std::string::npos) << other.out;
}

TEST_F(MemoryGraphs, TrimeNeedsTheFfnInputAndLongNeedsDocuments) {
  Result r = sh("validate graphs/trime_gpt.toml --set nodes.trime.reps='\"student.hidden\"'");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("ffn_input"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--set nodes.trime.reps=\"student.hidden\": error:"), std::string::npos) << r.out;
  Result bad = sh("validate graphs/trime_gpt.toml --set nodes.trime.memory='\"longer\"'");
  EXPECT_NE(bad.rc, 0);
  EXPECT_NE(bad.out.find("local"), std::string::npos) << bad.out;
  EXPECT_EQ(sh("validate graphs/trime_gpt_vanilla.toml").rc, 0);
  // Long memory without document ids is the reference's memory (every earlier segment of the
  // block); only same_document needs them.
  std::ifstream in(std::string(SCION_SOURCE_DIR) + "/graphs/trime_gpt.toml");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const std::string docs_line = "docs = \"corpus.docs\"\n";
  ASSERT_NE(text.find(docs_line), std::string::npos);
  text.erase(text.find(docs_line), docs_line.size());
  const fs::path g = *dir_ / "trime_no_docs.toml";
  std::ofstream(g) << text;
  Result ok = sh("validate " + g.string() + " --set nodes.trime.memory='\"long\"'");
  EXPECT_EQ(ok.rc, 0) << ok.out;
  Result needs = sh("validate " + g.string() + " --set nodes.trime.memory='\"long\"' --set nodes.trime.same_document=true");
  EXPECT_NE(needs.rc, 0);
  EXPECT_NE(needs.out.find("same_document"), std::string::npos) << needs.out;
}

}  // namespace
