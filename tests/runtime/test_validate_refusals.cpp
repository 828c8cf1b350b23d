// Every refusal that `scion run` makes before its first update, made by `scion validate` too:
// each case is one edit of a small real graph (the in-tree plugins), refused by load_graph
// with its file:line:column, message and hint, and by `scion run` with the same located
// error before anything is written. Most of these were refused only at run time (by a
// plugin's constructor, a growth op's apply(), a model's first forward pass or the executor).
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <toml++/toml.h>

#include "fixtures.h"
#include "in_process.h"
#include "graph/graph.h"
#include "scion/sizes.h"
#include "scion_cli.h"

using namespace scion;
using namespace scion::runtime;
namespace fs = std::filesystem;

namespace {


std::string corpus(const char* file) { return std::string(SCION_SOURCE_DIR) + "/data/corpus/news/" + file; }

// A knowledge-inheritance graph small enough to run in a second (line numbers matter below).
std::string base_graph() {
  return "[run]\nname = \"refusals\"\ndevice = \"cpu\"\n\n" + tokenizer_table() + "\n" +
         corpus_table({.files = corpus("train.txt"), .valid_files = corpus("valid.txt"), .seq_len = 32}) + "\n" +
         gpt_table({.name = "teacher", .context = 32, .width = 32, .keys = "frozen = true\n"}) + "\n" +
         gpt_table({.name = "student", .context = 32, .width = 32}) + "\n" + R"([nodes.inherit]
plugin = "loss.inherit"
student = "student.logits"
teacher = "teacher.logits"
targets = "corpus.targets"
schedule = "linear"
steps = 10

[nodes.ppl]
plugin = "eval.ppl"
model = "student"
teacher = "teacher"
data = ["corpus"]
max_batches = 1

[[stages]]
name = "train"
steps = 2
train = ["student"]
losses = ["inherit"]
optimizer = { lr = 1e-3, decay = "cosine" }
eval = { every = 1, evaluators = ["ppl"] }
ops = [ { plugin = "grow.subnets", target = "student", enabled = false } ]
)";
}

std::string edit(std::string s, const std::string& from, const std::string& to) {
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at != std::string::npos) s.replace(at, from.size(), to);
  return s;
}

struct Refusal {
  const char* what;
  std::vector<std::pair<std::string, std::string>> edits;  // from -> to, on the base graph
  int line, column;
  const char* message;  // a part of the diagnostic's message
  const char* hint;     // a part of its hint
};

std::vector<Refusal> refusals() {
  return {
      // loss.inherit (its constructor and Executor::run's needed_metrics check)
      {"until_surpassed without its evaluator in the stage",
       {{"schedule = \"linear\"", "schedule = \"until_surpassed\""}, {"evaluators = [\"ppl\"]", "evaluators = []"}},
       56, 8, "acts on the evaluation metric 'ppl/loss', but the stage does not evaluate with 'ppl'",
       "evaluators = [\"ppl\"]"},
      {"until_surpassed in a stage that never evaluates",
       {{"schedule = \"linear\"", "schedule = \"until_surpassed\""}, {"every = 1, ", "every = 0, "}},
       56, 8, "the stage does not evaluate with 'ppl'", "eval = { every = N"},
      {"until_surpassed on a teacher_loss that eval.ppl does not give",
       {{"schedule = \"linear\"", "schedule = \"until_surpassed\""}, {"teacher = \"teacher\"\ndata", "data"}},
       35, 8, "teacher_metric 'ppl/teacher_loss' needs 'ppl' to score a teacher", "set teacher ="},
      {"a schedule name that does not exist", {{"schedule = \"linear\"", "schedule = \"linaer\""}},
       40, 12, "'schedule' in node 'inherit' (loss.inherit) must be one of constant, linear, until_surpassed",
       "did you mean 'linear'?"},
      {"alpha outside [0, 1]", {{"steps = 10\n", "steps = 10\nalpha = 1.5\n"}},
       42, 9, "must be in [0, 1], got 1.5", "alpha is in [0, 1]"},
      {"temperature 0", {{"steps = 10\n", "steps = 10\ntemperature = 0.0\n"}},
       42, 15, "'temperature' in node 'inherit' (loss.inherit) must be above 0, got 0", "temperature is above 0"},
      {"temperature NaN", {{"steps = 10\n", "steps = 10\ntemperature = nan\n"}},
       42, 15, "'temperature' in node 'inherit' (loss.inherit) must be a finite number, got nan", "temperature is above 0"},
      {"a temperature that underflows a float", {{"steps = 10\n", "steps = 10\ntemperature = 1e-50\n"}},
       42, 15, "'temperature' in node 'inherit' (loss.inherit) is 1e-50, which underflows to 0", "at least 1.2e-38"},
      {"an infinite alpha", {{"steps = 10\n", "steps = 10\nalpha = -inf\n"}},
       42, 9, "'alpha' in node 'inherit' (loss.inherit) must be a finite number, got -inf", "alpha is in [0, 1]"},
      {"a linear schedule over 0 steps", {{"steps = 10\n", "steps = 0\n"}},
       41, 9, "a linear schedule needs steps > 0, got 0", "steps: the updates"},
      // data.text (its constructor and its streams)
      {"stage_files naming a stage that does not exist",
       {{"seq_len = 32\n", "seq_len = 32\nstage_files = { trian = [\"" + corpus("train.txt") + "\"] }\n"}},
       14, 25, "stage_files names stage 'trian', which the graph does not have", "its stages: train"},
      {"stage_files with a glob that matches nothing",
       {{"seq_len = 32\n", "seq_len = 32\nstage_files = { train = [\"/nonexistent/*.txt\"] }\n"}},
       14, 26, "stage_files.train: no file matches '/nonexistent/*.txt'", "relative to the directory"},
      {"a tokenizer that is a model", {{"tokenizer = \"tok\"", "tokenizer = \"student\""}},
       10, 13, "'tokenizer' of node 'corpus' names node 'student', a model (model.gpt), but needs a tokenizer node",
       "tokenizer nodes: tok"},
      {"no tokenizer", {{"tokenizer = \"tok\"\n", ""}},
       8, 8, "node 'corpus' (data.text) needs 'tokenizer' (node name)", "the tokenizer node"},
      {"windows of 0 tokens", {{"seq_len = 32", "seq_len = 0"}},
       13, 11, "'seq_len' in node 'corpus' (data.text) must be at least 1, got 0", "seq_len is at least 1"},
      {"a masking probability above 1", {{"seq_len = 32\n", "seq_len = 32\nmlm_prob = 1.5\n"}},
       14, 12, "'mlm_prob' in node 'corpus' (data.text) must be in [0, 1], got 1.5", "mlm_prob is in [0, 1]"},
      // eval.ppl (its constructor and its first evaluation)
      {"a data list naming a tokenizer", {{"data = [\"corpus\"]", "data = [\"corpus\", \"tok\"]"}},
       47, 19, "'data' of node 'ppl' names node 'tok', a tokenizer (tokenizer.bytes), but needs a data node",
       "data nodes: corpus"},
      {"a data node without validation files", {{"valid_files = [\"" + corpus("valid.txt") + "\"]\n", ""}},
       46, 9, "data node 'corpus' (data.text) has no validation files", "set valid_files on node 'corpus'"},
      {"nothing to evaluate on", {{"data = [\"corpus\"]", "data = []"}},
       43, 8, "name data nodes (data = [...]) or domains = {...}", "domains = { name"},
      {"domains without a tokenizer",
       {{"data = [\"corpus\"]", "domains = { news = \"" + corpus("valid.txt") + "\" }"}},
       47, 11, "domains = {...} needs tokenizer", "add tokenizer ="},
      {"a model reference that is a data node", {{"model = \"student\"", "model = \"corpus\""}},
       45, 9, "'model' of node 'ppl' names node 'corpus', a data (data.text), but needs a model node",
       "model nodes: student, teacher"},
      {"no model to evaluate", {{"model = \"student\"\n", ""}},
       43, 8, "node 'ppl' (eval.ppl) needs 'model' (node name)", "the model evaluated"},
      // model.gpt (its constructor and its first forward pass)
      {"heads that do not divide the width", {{"width = 32\nheads = 2\ntokens", "width = 32\nheads = 3\ntokens"}},
       32, 9, "width 32 is not divisible by heads 3", "choose heads that divide the width"},
      {"windows longer than the context", {{"context = 32\nlayers = 1\nwidth = 32\nheads = 2\ntokens",
                                            "context = 16\nlayers = 1\nwidth = 32\nheads = 2\ntokens"}},
       29, 11, "node 'corpus' feeds windows of 32 tokens, more than the context of 16", "set context >= 32"},
      {"a teacher with another vocabulary (the loss's logits differ in shape)", {{"vocab = 257\ncontext = 32\nlayers = 1\nwidth = 32\nheads = 2\nfrozen", "vocab = 300\ncontext = 32\nlayers = 1\nwidth = 32\nheads = 2\nfrozen"}},
       38, 11, "shapes differ: 'teacher.logits' into input 'teacher' of node 'inherit': dimension 2 is 300 but 257 is needed",
       "the 257 comes from 'student.logits'"},
      // ops of a stage (their apply() when the stage starts)
      {"a bert2bert method that does not exist",
       {{"{ plugin = \"grow.subnets\", target = \"student\", enabled = false }",
         "{ plugin = \"grow.bert2bert\", target = \"student\", method = \"akk\", width = 64 }"}},
       57, 67, "'method' in op 'grow.bert2bert' of stage 0 must be one of fpi, aki, got 'akk'", "did you mean 'aki'?"},
      {"a grow.masked init that does not exist",
       {{"{ plugin = \"grow.subnets\", target = \"student\", enabled = false }",
         "{ plugin = \"grow.masked\", target = \"student\", new_layers = \"stak\", width = 64 }"}},
       57, 68, "'new_layers' in op 'grow.masked' of stage 0 must be one of random, stack, got 'stak'",
       "did you mean 'stack'?"},
      {"a mask ramp of 0 updates",
       {{"{ plugin = \"grow.subnets\", target = \"student\", enabled = false }",
         "{ plugin = \"grow.masked\", target = \"student\", ramp_steps = 0, width = 64 }"}},
       57, 68, "'ramp_steps' in op 'grow.masked' of stage 0 must be at least 1, got 0", "ramp_steps is at least 1"},
      {"an op plugin that is not a string", {{"plugin = \"grow.subnets\"", "plugin = 3"}},
       57, 20, "'plugin' of an op in stage 0 must be a string, got an integer", "plugin = \"<op plugin>\""},
      {"an op target that is not a string", {{"target = \"student\", enabled", "target = [\"student\"], enabled"}},
       57, 45, "'target' of an op in stage 0 must be a string, got an array", "target = \"<model node>\""},
      // the graph's own keys (the executor)
      {"a node plugin that is not a string", {{"plugin = \"tokenizer.bytes\"", "plugin = 1"}},
       6, 10, "'plugin' of node 'tok' must be a string, got an integer", "`scion plugins` lists"},
      {"a decay that does not exist", {{"decay = \"cosine\"", "decay = \"cosnie\""}},
       55, 34, "'decay' in the optimizer of stage 0 must be one of constant, linear, cosine, got 'cosnie'",
       "did you mean 'cosine'?"},
      {"a device that does not exist", {{"device = \"cpu\"", "device = \"cpuu\""}},
       3, 10, "'device' in [run] must be cpu, cuda, cuda:N or auto, got 'cpuu'", "did you mean 'cpu'?"},
  };
}

}  // namespace

// The base graph is valid and trains: each refusal below is the one edit's doing.
TEST(ValidateRefusals, TheBaseGraphValidatesAndRuns) {
  const fs::path dir = temp("refusals_base");
  std::ofstream(dir / "g.toml") << base_graph();
  const Result r = sh("run " + (dir / "g.toml").string() + " --plain --out " + (dir / "run").string());
  EXPECT_EQ(r.rc, 0) << r.out;
  EXPECT_TRUE(fs::exists(dir / "run" / "metrics.jsonl")) << r.out;
  fs::remove_all(dir);
}

TEST(ValidateRefusals, ValidateRefusesWhatRunRefuses) {
  const fs::path dir = temp("refusals");
  for (const Refusal& c : refusals()) {
    SCOPED_TRACE(c.what);
    std::string text = base_graph();
    for (const auto& [from, to] : c.edits) text = edit(text, from, to);
    std::vector<Diagnostic> diags;
    try {
      load_graph("g.toml", text, {}, in_tree_registry());
    } catch (const GraphError& e) {
      diags = e.diagnostics();
    }
    ASSERT_FALSE(diags.empty()) << "validation passed:\n" << text;
    const Diagnostic* d = nullptr;
    for (const auto& x : diags)
      if (x.message.find(c.message) != std::string::npos) d = &x;
    ASSERT_NE(d, nullptr) << "no diagnostic says: " << c.message << "\nfirst: " << diags[0].pos.line << ":"
                          << diags[0].pos.column << ": " << diags[0].message;
    EXPECT_EQ(d->pos.line, c.line) << d->message;
    EXPECT_EQ(d->pos.column, c.column) << d->message;
    EXPECT_NE(d->hint.find(c.hint), std::string::npos) << d->hint;

    // `scion run` stops at the same place with the same words, and writes nothing.
    fs::create_directories(dir);
    std::ofstream(dir / "g.toml") << text;
    const Result r = sh("run " + (dir / "g.toml").string() + " --plain --out " + (dir / "run").string());
    EXPECT_NE(r.rc, 0);
    const std::string located =
        (dir / "g.toml").string() + ":" + std::to_string(c.line) + ":" + std::to_string(c.column) + ": error: ";
    EXPECT_NE(r.out.find(located), std::string::npos) << located << "\n" << r.out;
    EXPECT_NE(r.out.find(c.message), std::string::npos) << r.out;
    EXPECT_FALSE(fs::exists(dir / "run")) << "a run directory was created for a refused graph";
    fs::remove_all(dir);
  }
}

// A tokenizer from another library than the in-tree ones (tests/runtime/plugins) gets the same
// vocabulary check as tokenizer.bytes: the graph checks ask the host for the tokenizer
// (GraphView::tokenizer, made by the node factory), not for a plugin name they know.
TEST(ValidateRefusals, AThirdPartyTokenizerGetsTheVocabularyCheck) {
  auto refusal = [](const std::string& text) -> std::string {
    try {
      load_graph("g.toml", text, {}, registry());
    } catch (const GraphError& e) {
      for (const auto& d : e.diagnostics())
        if (d.message.find("vocabulary") != std::string::npos)
          return std::to_string(d.pos.line) + ":" + std::to_string(d.pos.column) + ": " + d.message + " | " + d.hint;
      return std::string("other: ") + e.what();
    }
    return "";
  };
  const std::string in_tree = edit(edit(base_graph(), "vocab = 257", "vocab = 200"), "vocab = 257", "vocab = 200");
  EXPECT_EQ(refusal(in_tree),
            "28:9: node 'student' (model.gpt): a vocabulary of 200 is smaller than tokenizer 'tok' (tokenizer.bytes), "
            "which gives ids up to 256 | set vocab = 257 (or up to 384, padded to a multiple of 128)");
  const std::string third_party = edit(base_graph(), "plugin = \"tokenizer.bytes\"", "plugin = \"test.tokenizer\"\nvocab = 300");
  EXPECT_EQ(refusal(third_party),
            "29:9: node 'student' (model.gpt): a vocabulary of 257 is smaller than tokenizer 'tok' (test.tokenizer), "
            "which gives ids up to 299 | set vocab = 300 (or up to 384, padded to a multiple of 128)");
  // The same tokenizer with 257 ids fits the models: the graph validates (its text windows
  // counted with the plugin's own encode()).
  EXPECT_EQ(refusal(edit(third_party, "vocab = 300", "vocab = 257")), "");
}

// Defaults go into the resolved graph (graph.toml of the run directory) whole: integer lists
// as integers, nested arrays and tables of arrays kept, and the resolved graph validates to
// the same parameters.
TEST(ValidateRefusals, TheResolvedGraphKeepsEveryDefault) {
  const GraphSpec g = load_graph("g.toml", base_graph(), {}, in_tree_registry());
  toml::table resolved = toml::parse(g.resolved_toml);
  const toml::array* never = resolved["nodes"]["corpus"]["never_mask"].as_array();
  ASSERT_NE(never, nullptr) << g.resolved_toml;
  ASSERT_EQ(never->size(), 3u);
  EXPECT_EQ(never->get(1)->value<int64_t>(), 101);  // an integer, not 101.0
  const GraphSpec again = load_graph("resolved.toml", g.resolved_toml, {}, in_tree_registry());
  // Key order may differ (the resolved TOML is written sorted); the values may not.
  for (const auto& n : g.nodes)
    EXPECT_EQ(nlohmann::json(again.node(n.name)->params).dump(), nlohmann::json(n.params).dump()) << n.name;
}

TEST(ValidateRefusals, NestedDefaultsSurviveInTheResolvedGraph) {
  PluginRegistry reg;
  reg.scan({std::string(SCION_TEST_PLUGINS) + "/good", SCION_PLUGIN_DIR});
  const char* graph = R"([nodes.data]
plugin = "test.synthetic"

[nodes.model]
plugin = "test.linear"
x = "data.x"

[nodes.loss]
plugin = "test.mse"
pred = "model.y"
target = "data.y"

[[stages]]
steps = 1
train = ["model"]
losses = ["loss"]
)";
  const GraphSpec g = load_graph("g.toml", graph, {}, reg);
  toml::table resolved = toml::parse(g.resolved_toml);
  auto layout = resolved["nodes"]["data"]["layout"];
  ASSERT_TRUE(layout.is_table()) << g.resolved_toml;
  const toml::array* groups = layout["groups"].as_array();
  ASSERT_NE(groups, nullptr) << g.resolved_toml;
  ASSERT_EQ(groups->size(), 2u) << g.resolved_toml;
  ASSERT_TRUE(groups->get(0)->is_array()) << g.resolved_toml;
  EXPECT_EQ(groups->get(0)->as_array()->size(), 2u);
  EXPECT_EQ(layout["names"][0]["a"][0].value<double>(), 0.5);
  EXPECT_EQ(layout["deep"][0][0][0].value<std::string>(), "x");
  const GraphSpec again = load_graph("resolved.toml", g.resolved_toml, {}, reg);
  EXPECT_EQ(nlohmann::json(again.node("data")->params.at("layout")).dump(),
            nlohmann::json(g.node("data")->params.at("layout")).dump());
}

// Issue 35, item 5: model.llama's weight estimate counts SwiGLU's three FFN matrices (gate,
// up, down). An FFN sized so that two matrices would fit in this machine's memory and three
// do not is refused at validation (it was accepted, then failed allocating).
TEST(ValidateRefusals, LlamaWeightsCountThreeFfnMatrices) {
  const double ram = machine_memory_bytes();
  ASSERT_GT(ram, 0);
  const int64_t width = 1024, ffn = int64_t(ram / (10.0 * double(width)));  // 4 bytes × 2.5 matrices × w × ffn = ram
  const std::string text = "[run]\nname = \"llama\"\ndevice = \"cpu\"\n\n" + tokenizer_table() + "\n" +
                           corpus_table({.files = corpus("train.txt"), .seq_len = 16}) + "\n" +
                           "[nodes.m]\nplugin = \"model.llama\"\nvocab = 257\ncontext = 16\nlayers = 1\nwidth = " +
                           std::to_string(width) + "\nheads = 8\nffn = " + std::to_string(ffn) +
                           "\ntokens = \"corpus.tokens\"\n\n" + lm_table("m") +
                           "\n[[stages]]\nname = \"train\"\nsteps = 1\ntrain = [\"m\"]\nlosses = [\"lm\"]\n";
  std::vector<Diagnostic> diags;
  try {
    load_graph("g.toml", text, {}, in_tree_registry());
  } catch (const GraphError& e) {
    diags = e.diagnostics();
  }
  ASSERT_EQ(diags.size(), 1u) << "validation passed:\n" << text;
  EXPECT_NE(diags[0].message.find("for its weights alone; this machine has"), std::string::npos) << diags[0].message;
  EXPECT_EQ(diags[0].pos.line, 19) << diags[0].message;  // layers = 1
}
