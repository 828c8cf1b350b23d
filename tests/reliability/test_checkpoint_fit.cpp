// Checkpoint <-> graph fit (issue 17, item 6): `scion eval GRAPH --checkpoint` and `scion
// generate` refuse a checkpoint whose kind, vocabulary or context does not fit the graph or the
// tokenizer, naming both sides, instead of printing meaningless numbers or text with exit 0.
#include "reliability.h"
#include "scion/checkpoint.h"
#include "scion/safetensors.h"

using namespace reliability;

namespace {

std::string tiny_bert_graph() {
  return "[run]\nname = \"tiny-bert\"\nthreads = 1\n\n" + tokenizer_table() + "\n" +
         corpus_table({.files = news("train.txt"), .keys = "mlm_prob = 0.15\nmask_id = 255\n"}) + "\n" + R"([nodes.bert]
plugin = "model.bert"
vocab = 257
context = 16
layers = 1
width = 16
heads = 2
tokens = "corpus.tokens"

[nodes.mlm]
plugin = "loss.mlm"
logits = "bert.logits"
targets = "corpus.targets"

[[stages]]
steps = 1
train = ["bert"]
losses = ["mlm"]
)";
}

// Trains the two tiny models once for every test: a GPT and a BERT over the bytes tokenizer.
class CheckpointFit : public ::testing::Test {
 protected:
  static fs::path dir;
  static void SetUpTestSuite() {
    dir = temp("fit");
    std::ofstream(dir / "gpt.toml") << tiny_graph();
    std::ofstream(dir / "bert.toml") << tiny_bert_graph();
    for (const char* g : {"gpt", "bert"}) {
      const Result r = sh(std::string("run ") + (dir / g).string() + ".toml --plain --out " + (dir / g).string());
      ASSERT_EQ(exit_code(r), 0) << r.out;
    }
  }
  static void TearDownTestSuite() { fs::remove_all(dir); }
  static std::string gpt() { return (dir / "gpt" / "student.safetensors").string(); }
  static std::string bert() { return (dir / "bert" / "bert.safetensors").string(); }
  static std::string graph() { return (dir / "gpt.toml").string(); }
};
fs::path CheckpointFit::dir;

}  // namespace

TEST_F(CheckpointFit, EvalAcceptsACheckpointThatFits) {
  const Result r = sh("eval " + graph() + " --checkpoint " + gpt());
  EXPECT_EQ(exit_code(r), 0) << r.out;
  EXPECT_NE(r.out.find("\"ppl\""), std::string::npos) << r.out;
}

TEST_F(CheckpointFit, EvalRefusesACheckpointOfAnotherKind) {
  const Result r = sh("eval " + graph() + " --checkpoint " + bert());
  EXPECT_EQ(exit_code(r), 3) << r.out;
  EXPECT_NE(r.out.find("--set nodes.student.load=\"" + bert() + "\": error: node 'student' (model.gpt): '" + bert() +
                       "' holds a model.bert model, but node 'student' is model.gpt"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("load it into a node with plugin = \"model.bert\""), std::string::npos) << r.out;
}

TEST_F(CheckpointFit, EvalRefusesAVocabularySmallerThanTheTokenizers) {
  // gpt_pretrain.toml tokenizes with GPT-2's BPE (50257 ids); the checkpoint knows 257.
  const Result r = sh("eval graphs/gpt_pretrain.toml --checkpoint " + gpt());
  EXPECT_EQ(exit_code(r), 3) << r.out;
  EXPECT_NE(r.out.find("a vocabulary of 257 (from '" + gpt() +
                       "') is smaller than tokenizer 'tok' (tokenizer.gpt2), which gives ids up to 50256"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("trained with another tokenizer"), std::string::npos) << r.out;
}

TEST_F(CheckpointFit, EvalRefusesAVocabularyFarLargerThanTheTokenizers) {
  // Only the header is read at validation: a checkpoint that says it is a GPT-2-vocabulary model.
  const std::string big = (dir / "big.safetensors").string();
  safetensors::save(big, {{"x", Tensor::zeros({1}, DType::f32)}},
                    {{checkpoint::kPluginKey, "model.gpt"},
                     {checkpoint::kConfigKey, R"({"vocab":50257,"context":16,"layers":1,"width":16,"heads":2})"}});
  const Result r = sh("eval " + graph() + " --checkpoint " + big);
  EXPECT_EQ(exit_code(r), 3) << r.out;
  EXPECT_NE(r.out.find("'" + big + "' has a vocabulary of 50257, far more than the 257 ids of tokenizer 'tok' (tokenizer.bytes)"),
            std::string::npos)
      << r.out;
}

TEST_F(CheckpointFit, EvalRefusesAContextShorterThanTheWindows) {
  // The graph's own model would take 32 positions; the checkpoint has 16.
  const Result r = sh("eval " + graph() + " --checkpoint " + gpt() +
                      " --set nodes.corpus.seq_len=32 --set nodes.student.context=32");
  EXPECT_EQ(exit_code(r), 3) << r.out;
  EXPECT_NE(r.out.find("node 'corpus' feeds windows of 32 tokens, more than the context of 16 (from '" + gpt() + "')"),
            std::string::npos)
      << r.out;
}

TEST_F(CheckpointFit, EvalRefusesAFileThatIsNoCheckpoint) {
  const std::string junk = (dir / "junk.safetensors").string();
  std::ofstream(junk) << "not a safetensors file at all";
  const Result r = sh("eval " + graph() + " --checkpoint " + junk);
  EXPECT_EQ(exit_code(r), 3) << r.out;
  EXPECT_NE(r.out.find("cannot read the model file '" + junk + "'"), std::string::npos) << r.out;
}

TEST_F(CheckpointFit, GenerateRefusesABertCheckpoint) {
  const Result r = sh("generate --checkpoint " + bert() + " --prompt hello --tokenizer tokenizer.bytes");
  EXPECT_EQ(exit_code(r), 1) << r.out;
  EXPECT_NE(r.out.find("generate: '" + bert() + "' holds a BERT model"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("generate needs a causal model (model.gpt)"), std::string::npos) << r.out;
}

TEST_F(CheckpointFit, GenerateRefusesATokenizerTheModelWasNotTrainedWith) {
  const Result r = sh("generate --checkpoint " + gpt() + " --prompt hello");  // GPT-2's BPE by default
  EXPECT_EQ(exit_code(r), 1) << r.out;
  EXPECT_NE(r.out.find("the model in '" + gpt() + "' has a vocabulary of 257, but tokenizer tokenizer.gpt2 has 50257 ids"),
            std::string::npos)
      << r.out;
  const Result ok = sh("generate --checkpoint " + gpt() + " --prompt hello --tokenizer tokenizer.bytes --max-tokens 4");
  EXPECT_EQ(exit_code(ok), 0) << ok.out;
  EXPECT_EQ(ok.out.rfind("hello", 0), 0u) << ok.out;
}
