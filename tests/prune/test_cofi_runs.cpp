// loss.cofi and op.cofi_prune in real `scion run`s: the multipliers rise while ŝ is below the
// target, the finetuned model is physically smaller, a run killed mid-pruning resumes on the
// same curve, and bad graphs are refused with their file position before anything runs.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "fixtures.h"
#include "lm_nodes.h"
#include "prune_fixtures.h"
#include "scion_cli.h"

namespace {
using prune_fixtures::stand_in;

const std::string kGraph =
    "\n[run]\nname = \"cofi-test\"\nseed = 9\nthreads = 1\n\n" + tokenizer_table() + "\n" +
    corpus_table({.files = "@DATA@/data/corpus/literature/train.txt",
                  .valid_files = "@DATA@/data/corpus/literature/valid.txt",
                  .seq_len = 32,
                  .batch_size = 4}) +
    "\n" +
    gpt_table({.name = "teacher", .context = 32, .layers = 4, .width = 32, .heads = 4,
               .keys = "init_seed = 3\nfrozen = true\nlayer_outputs = true\n"}) +
    "\n" +
    gpt_table({.name = "student", .context = 32, .layers = 4, .width = 32, .heads = 4,
               .keys = "init_seed = 3\nlayer_outputs = true\n"}) +
    "\n" + R"([nodes.cofi]
plugin = "loss.cofi"
model = "student"
student = "student.logits"
teacher = "teacher.logits"
student_layers = "student.layers"
teacher_layers = "teacher.layers"
target = 0.6
warmup = 10
start = 2

)" + lm_table("student") + R"(
[nodes.ppl]
plugin = "eval.ppl"
model = "student"
data = ["corpus"]
max_batches = 40

[[stages]]
name = "prune"
steps = 30
train = ["student", "cofi"]
losses = ["cofi"]
optimizer = { plugin = "optim.adamw", lr = 1e-3, weight_decay = 0.0 }
param_groups = [
  { nodes = ["cofi"], match = "log_alpha.*", lr = 0.1 },
  { nodes = ["cofi"], match = "lambda_*", plugin = "optim.sgd", lr = 0.1, momentum = 0.0, weight_decay = 0.0, sign = -1 },
]
eval = { every = 1, evaluators = ["ppl"] }
checkpoint = { every = 5 }
log_every = 1

[[stages]]
name = "finetune"
steps = 6
train = ["student"]
losses = ["lm"]
ops = [{ plugin = "op.cofi_prune", target = "student", masks = "cofi" }]
optimizer = { plugin = "optim.adamw", lr = 1e-3 }
log_every = 1
)";



// The training lines (those with a loss) of a run's metrics.
std::vector<Json> train_lines(const fs::path& run) {
  std::vector<Json> out;
  for (const Json& j : metrics(run))
    if (j.contains("loss")) out.push_back(j);
  return out;
}

}  // namespace

TEST(CofiRuns, MultipliersRiseWhileBelowTargetAndThePrunedModelIsSmaller) {
  const fs::path dir = temp("cofi_run");
  std::ofstream(dir / "g.toml") << with_data(kGraph);
  ASSERT_EQ(run_scion((dir / "g.toml").string() + " --out " + (dir / "run").string()), 0);
  const auto m = train_lines(dir / "run");
  ASSERT_EQ(m.size(), 36u);
  // Before pruning starts: no Lagrangian term, the multipliers untouched.
  EXPECT_EQ(json_number(m[0].at("cofi/lambda_2")), 0.0);
  EXPECT_EQ(json_number(m[1].at("cofi/target")), 0.0);
  int rises = 0, steps_below = 0;
  for (size_t i = 3; i < 30; ++i) {
    const double s = json_number(m[i - 1].at("cofi/expected_sparsity")), t = json_number(m[i - 1].at("cofi/target"));
    if (s >= t) continue;
    ++steps_below;
    // Ascent on λ (plain SGD here, so each step follows its own gradient): λ₂ grows by (ŝ − t)² > 0; λ₁ moves by ŝ − t < 0, i.e. −λ₁ (the push on ŝ) rises.
    rises += json_number(m[i].at("cofi/lambda_2")) > json_number(m[i - 1].at("cofi/lambda_2")) &&
             json_number(m[i].at("cofi/lambda_1")) < json_number(m[i - 1].at("cofi/lambda_1"));
  }
  EXPECT_GT(steps_below, 5);
  EXPECT_EQ(rises, steps_below);
  EXPECT_NEAR(json_number(m[7].at("cofi/target")), 0.6 * 5 / 10, 1e-6) << "the target ramps from 0 after start";
  EXPECT_GT(json_number(m[29].at("cofi/expected_sparsity")), 0.05);
  // The finetuned student is the pruned model: smaller on disk than the teacher's shapes.
  const auto st = safetensors::load((dir / "run" / "student.safetensors").string());
  int64_t n = 0;
  for (const auto& [k, t] : st.tensors)
    if (k.find(".h.") != std::string::npos && k.find("gate") == std::string::npos) n += t.numel();
  EXPECT_LT(n, 4 * (12 * 32 * 32 + 13 * 32)) << "block parameters after pruning";
  fs::remove_all(dir);
}

TEST(CofiRuns, AKilledRunResumesMidPruningOnTheSameCurve) {
  const fs::path dir = temp("cofi_resume");
  std::ofstream(dir / "g.toml") << with_data(kGraph);
  const std::string g = (dir / "g.toml").string();
  ASSERT_EQ(run_scion(g + " --out " + (dir / "full").string()), 0);
  const auto want = train_lines(dir / "full");
  const fs::path part = dir / "part";
  ASSERT_TRUE(run_killed_after_checkpoint(g, part, 10)) << "the run finished before it could be killed";
  ASSERT_EQ(run_scion(g + " --out " + part.string() + " --resume"), 0);
  const auto got = train_lines(part);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(json_number(got[i].at("loss")), json_number(want[i].at("loss"))) << "step " << i + 1;
    if (want[i].contains("cofi/expected_sparsity")) {
      EXPECT_EQ(json_number(got[i].at("cofi/expected_sparsity")), json_number(want[i].at("cofi/expected_sparsity")));
    }
  }
  fs::remove_all(dir);
}

TEST(CofiRuns, BadGraphsAreRefusedWithTheirPosition) {
  const fs::path dir = temp("cofi_bad");
  auto validate = [&](const std::string& from, const std::string& to) {
    std::string text = with_data(kGraph);
    const size_t at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    text.replace(at, from.size(), to);
    std::ofstream(dir / "g.toml") << text;
    return sh("validate " + (dir / "g.toml").string());
  };
  Result r = validate("target = 0.6", "target = 1.0");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("g.toml:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("target"), std::string::npos) << r.out;
  r = validate("start = 2", "start = 2\nmatch_layers = [0, 1, 2, 3, 3]");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("g.toml:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("matches 5 teacher layers but the student 'student' has only 4"), std::string::npos) << r.out;
  // Issue 35, item 9: refused by run only at the first step (or trained into NaN).
  struct Refusal {
    std::string from, to, says;
  };
  for (const Refusal& c : std::vector<Refusal>{
           {"start = 2", "start = 2\nmatch_layers = [0, 1, 7]",
            "g.toml:51:23: error: node 'cofi' (loss.cofi): match_layers names teacher layer 7, but teacher 'teacher' has "
            "layers 0 to 3"},
           {"start = 2", "start = 2\nlog_alpha_init = nan",
            "g.toml:51:18: error: 'log_alpha_init' in node 'cofi' (loss.cofi) must be a finite number, got nan"},
           {"width = 32\nheads = 4\ninit_seed = 3\nfrozen", "width = 64\nheads = 4\ninit_seed = 3\nfrozen",
            "layerwise distillation compares hidden states, but teacher 'teacher' has width 64 and student 'student' "
            "width 32"}}) {
    r = validate(c.from, c.to);
    EXPECT_EQ(r.rc >> 8, 3) << r.out;
    EXPECT_NE(r.out.find(c.says), std::string::npos) << r.out;
  }
  r = validate("init_seed = 3\nlayer_outputs = true\ntokens = \"corpus.tokens\"\n\n[nodes.cofi]",
               "init_seed = 3\ntokens = \"corpus.tokens\"\n\n[nodes.cofi]");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("layer_outputs = true"), std::string::npos) << r.out;
  // Pruning a model the masks do not gate: refused when the finetune stage starts, before its
  // first update.
  std::string text = with_data(kGraph);
  text.replace(text.find("target = \"student\", masks"), 26, "target = \"teacher\", masks");
  std::ofstream(dir / "g2.toml") << text;
  r = sh("run " + (dir / "g2.toml").string() + " --out " + (dir / "bad").string() + " --plain");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("op.cofi_prune: the target has no masks"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

namespace {
const char* kShort =
    " --plain --set run.threads=1 --set nodes.corpus.seq_len=16 --set nodes.corpus.batch_size=2"
    " --set stages.0.steps=6 --set stages.1.steps=2 --set nodes.cofi.start=1 --set nodes.cofi.warmup=3"
    " --set nodes.cofi.target=0.5 --set stages.0.eval.every=0 --set stages.1.eval.every=2 --set nodes.ppl.max_batches=1"
    " --set stages.0.checkpoint.every=0 --set stages.1.checkpoint.every=0"
    " --set 'stages.0.param_groups.0.lr=0.3'";  // log α at a constant rate: FFN units stay near their start
}  // namespace

TEST(CofiRuns, TheShippedGraphsPruneFinetuneAndTheirModelEvaluatesAndGenerates) {
  const fs::path dir = temp("cofi_shipped");
  // GPT: prune, finetune, then the pruned file through eval and generate.
  const std::string gpt = stand_in<lm::DecoderNode, lm::DecoderConfig>(dir, 50257, "gpt.safetensors");
  Result r = sh("run graphs/cofi_gpt.toml --out " + (dir / "gpt").string() + " --set nodes.teacher.load=" + gpt +
                " --set nodes.student.load=" + gpt + " --set nodes.ppl.seq_len=16" + kShort);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("op op.cofi_prune applied to student"), std::string::npos) << r.out;
  // As in the reference, the embeddings are frozen while pruning (the checkpoint closing the
  // pruning stage, before the finalisation); the blocks train.
  auto tensors = [](const fs::path& f) {
    std::map<std::string, std::vector<float>> m;
    for (auto& [k, t] : safetensors::load(f.string()).tensors) m[k] = t.to_vector();
    return m;
  };
  auto frozen = [&](const fs::path& before, const fs::path& after, const std::vector<std::string>& embeddings,
                    const std::string& block) {
    const auto a = tensors(before), b = tensors(after);
    for (const auto& e : embeddings) EXPECT_EQ(a.at(e), b.at(e)) << e << " moved while pruning";
    EXPECT_NE(a.at(block), b.at(block)) << block;
  };
  frozen(gpt, dir / "gpt" / "checkpoints" / "step_6" / "student.safetensors",
         {"transformer.wte.weight", "transformer.wpe.weight"}, "transformer.h.0.mlp.c_fc.weight");
  const std::string pruned = (dir / "gpt" / "student.safetensors").string();
  EXPECT_LT(fs::file_size(pruned), fs::file_size(gpt)) << "the pruned checkpoint is smaller on disk\n" << r.out;
  r = sh("eval graphs/gpt_pretrain.toml --checkpoint " + pruned + " --set nodes.student.load=" + pruned +
         " --set nodes.ppl.max_batches=1 --set nodes.ppl.seq_len=16");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("\"ppl\":"), std::string::npos) << r.out;
  r = sh("generate --checkpoint " + pruned + " --prompt \"The\" --max-tokens 4 --seed 1");
  ASSERT_EQ(r.rc, 0) << r.out;
  // Llama: key/value groups, SwiGLU units, hidden dimensions through RMSNorm.
  {
    lm::DecoderConfig c = lm::DecoderConfig::of_family("llama");
    c.vocab = 50257, c.context = 128, c.layers = 2, c.width = 16, c.heads = 4, c.kv_heads = 2, c.ffn = 32, c.seed = 4;
    lm::DecoderNode n(c);
    const std::string llama = (dir / "llama.safetensors").string();
    safetensors::save(llama, n.module().state_dict(), {{checkpoint::kConfigKey, json_dump(n.config())}});
    r = sh("run graphs/cofi_llama.toml --out " + (dir / "llama").string() + " --set nodes.teacher.load=" + llama +
           " --set nodes.student.load=" + llama + " --set nodes.ppl.seq_len=16" + kShort);
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_NE(r.out.find("op op.cofi_prune applied to student"), std::string::npos) << r.out;
    frozen(llama, dir / "llama" / "checkpoints" / "step_6" / "student.safetensors", {"model.embed_tokens.weight"},
           "model.layers.0.mlp.gate_proj.weight");
    const std::string pruned_llama = (dir / "llama" / "student.safetensors").string();
    r = sh("eval graphs/llama_pretrain.toml --checkpoint " + pruned_llama + " --set nodes.student.load=" + pruned_llama +
           " --set nodes.ppl.max_batches=1 --set nodes.ppl.seq_len=16");
    ASSERT_EQ(r.rc, 0) << r.out;
  }
  // BERT.
  const std::string bert = stand_in<lm::BertNode, lm::BertConfig>(dir, 30522, "bert.safetensors");
  r = sh("run graphs/cofi_bert.toml --out " + (dir / "bert").string() + " --set nodes.teacher.load=" + bert +
         " --set nodes.bert.load=" + bert + kShort);
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("op op.cofi_prune applied to bert"), std::string::npos) << r.out;
  frozen(bert, dir / "bert" / "checkpoints" / "step_6" / "bert.safetensors",
         {"bert.embeddings.word_embeddings.weight", "bert.embeddings.position_embeddings.weight",
          "bert.embeddings.LayerNorm.weight"},
         "bert.encoder.layer.0.intermediate.dense.weight");
  fs::remove_all(dir);
}
