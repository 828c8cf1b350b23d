// Graph validation: one test per kind of bad input. Each asserts the message, its line and
// column, and that `scion run` created no run directory.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "graph/graph.h"
#include "graph/port_type.h"
#include "fixtures.h"
#include "in_process.h"

using namespace scion;
using namespace scion::runtime;
using namespace scion::tests;
namespace fs = std::filesystem;

namespace {
const char* kGood = R"(
[run]
name = "good"

[nodes.data]
plugin = "test.synthetic"
batch = 8

[nodes.model]
plugin = "test.linear"
x = "data.x"

[nodes.loss]
plugin = "test.mse"
pred = "model.y"
target = "data.y"

[[stages]]
steps = 3
train = ["model"]
losses = ["loss"]
optimizer = { plugin = "optim.adamw", lr = 0.01 }
)";

std::vector<Diagnostic> diagnose(const std::string& text, const std::vector<std::string>& sets = {}) {
  try {
    load_graph("g.toml", text, sets, registry());
  } catch (const GraphError& e) {
    return e.diagnostics();
  }
  return {};
}

std::string replace(std::string s, const std::string& from, const std::string& to) {
  const size_t at = s.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return s.replace(at, from.size(), to);
}

// Runs `scion run` on the text and checks it failed without creating the run directory.
void expect_no_run_dir(const std::string& text) {
  const fs::path dir = fs::temp_directory_path() / ("scion_graph_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const fs::path g = dir / "bad.toml", out = dir / "run";
  std::ofstream(g) << text;
  const std::string cmd = std::string(SCION_EXE) + " run " + g.string() + " --out " + out.string() + " --plugin-dir " +
                          SCION_TEST_PLUGINS + "/good > /dev/null 2>&1";
  EXPECT_NE(std::system(cmd.c_str()), 0);
  EXPECT_FALSE(fs::exists(out)) << "a run directory was created for an invalid graph";
  fs::remove_all(dir);
}

}  // namespace

TEST(Graph, AGoodGraphValidatesAndFillsDefaults) {
  GraphSpec g = load_graph("g.toml", kGood, {}, registry());
  EXPECT_EQ(g.run.name, "good");
  ASSERT_EQ(g.nodes.size(), 3u);
  EXPECT_EQ(g.nodes.back().name, "loss");  // dependency order
  EXPECT_EQ(json_int(g.node("data")->params.at("dim")), 4);  // default filled
  EXPECT_NE(g.resolved_toml.find("dim = 4"), std::string::npos) << g.resolved_toml;
  EXPECT_NE(g.resolved_toml.find("weight_decay"), std::string::npos) << g.resolved_toml;
}

TEST(Graph, TomlSyntaxError) {
  const std::string bad = replace(kGood, "batch = 8", "batch = = 8");
  auto d = diagnose(bad);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].pos.file, "g.toml");
  EXPECT_EQ(d[0].pos.line, 7);
  EXPECT_GT(d[0].pos.column, 1);
  EXPECT_NE(d[0].message.find("TOML syntax"), std::string::npos);
  expect_no_run_dir(bad);
}

TEST(Graph, UnknownPluginWithDidYouMean) {
  const std::string bad = replace(kGood, "plugin = \"test.linear\"", "plugin = \"test.lineer\"");
  auto d = diagnose(bad);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].pos.line, 10);
  EXPECT_EQ(d[0].pos.column, 10);
  EXPECT_NE(d[0].message.find("unknown plugin 'test.lineer'"), std::string::npos) << d[0].message;
  EXPECT_NE(d[0].hint.find("did you mean 'test.linear'"), std::string::npos) << d[0].hint;
  expect_no_run_dir(bad);
}

TEST(Graph, UnknownKeyWithDidYouMean) {
  const std::string bad = replace(kGood, "batch = 8", "bacth = 8");
  auto d = diagnose(bad);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].pos.line, 7);
  EXPECT_EQ(d[0].pos.column, 1);
  EXPECT_NE(d[0].message.find("unknown key 'bacth'"), std::string::npos);
  EXPECT_NE(d[0].hint.find("did you mean 'batch'"), std::string::npos);
  expect_no_run_dir(bad);
}

TEST(Graph, WrongType) {
  const std::string bad = replace(kGood, "batch = 8", "batch = \"eight\"");
  auto d = diagnose(bad);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].pos.line, 7);
  EXPECT_EQ(d[0].pos.column, 9);
  EXPECT_NE(d[0].message.find("must be an integer, got a string"), std::string::npos) << d[0].message;
  expect_no_run_dir(bad);
}

TEST(Graph, MissingFile) {
  // The tiny GPT reading files that match nothing (the files key on line 8).
  const std::string text =
      tiny_gpt_graph({.head = "\n",
                      .corpus = {.files = "no/such/corpus/*.txt"},
                      .model = {.width = 8},
                      .stages = "[[stages]]\nsteps = 1\ntrain = [\"model\"]\nlosses = [\"lm\"]\n"});
  auto d = diagnose(text);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].pos.line, 8);
  EXPECT_EQ(d[0].pos.column, 9);
  EXPECT_NE(d[0].message.find("no file matches 'no/such/corpus/*.txt'"), std::string::npos) << d[0].message;
  expect_no_run_dir(text);
}

TEST(Graph, DanglingEdge) {
  const std::string bad = replace(kGood, "x = \"data.x\"", "x = \"dta.x\"");
  auto d = diagnose(bad);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].pos.line, 11);
  EXPECT_EQ(d[0].pos.column, 5);
  EXPECT_NE(d[0].message.find("names node 'dta', which does not exist"), std::string::npos) << d[0].message;
  EXPECT_NE(d[0].hint.find("did you mean 'data'"), std::string::npos);
  // A port that does not exist is dangling too.
  auto d2 = diagnose(replace(kGood, "x = \"data.x\"", "x = \"data.z\""));
  ASSERT_EQ(d2.size(), 1u);
  EXPECT_NE(d2[0].message.find("has no output 'z'"), std::string::npos) << d2[0].message;
  expect_no_run_dir(bad);
}

TEST(Graph, Cycle) {
  std::string bad = replace(kGood, "[nodes.loss]", R"([nodes.echo]
plugin = "test.linear"
x = "back.y"

[nodes.back]
plugin = "test.linear"
x = "echo.y"

[nodes.loss])");
  bad = replace(bad, "\"data.y\"", "\"data.y\"\nother = \"echo.y\"");
  // echo.x <- back.y and back.x <- echo.y (the port types differ too; the cycle is what we check)
  auto d = diagnose(bad);
  bool cycle = false;
  for (const auto& x : d) cycle |= x.message.find("cycle") != std::string::npos && x.pos.line > 0 && x.pos.column > 0;
  EXPECT_TRUE(cycle);
  expect_no_run_dir(bad);
}

TEST(Graph, PortTypeMismatch) {
  const std::string bad = replace(kGood, "target = \"data.y\"", "target = \"data.x\"");
  auto d = diagnose(bad);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].pos.line, 16);
  EXPECT_EQ(d[0].pos.column, 10);
  EXPECT_NE(d[0].message.find("'data.x' is features:f32[{batch},{dim}] but input 'target'"), std::string::npos)
      << d[0].message;
  expect_no_run_dir(bad);
}

TEST(Graph, ShapeMismatchAgainstAParameter) {
  // data.x is [8, 4] (batch 8, its default dim 4); the model's input takes [B, {dim}] = [B, 8].
  const std::string bad = replace(kGood, "x = \"data.x\"", "dim = 8\nx = \"data.x\"");
  auto d = diagnose(bad);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].pos.line, 12);
  EXPECT_EQ(d[0].pos.column, 5);
  EXPECT_NE(d[0].message.find("shapes differ: 'data.x' into input 'x' of node 'model': dimension 1 is 4 but 8"),
            std::string::npos)
      << d[0].message;
  EXPECT_NE(d[0].hint.find("parameter 'dim' of node 'model'"), std::string::npos) << d[0].hint;
  expect_no_run_dir(bad);
  // The same graph made consistent by an override validates.
  EXPECT_NO_THROW(load_graph("g.toml", bad, {"nodes.data.dim=8"}, registry()));
}

TEST(Graph, ShapeSymbolsAgreeAcrossANodesInputs) {
  // pred is [B, 1] with B = 8 (through the model from data), target comes from a source of 5.
  std::string bad = replace(kGood, "[nodes.model]", "[nodes.other]\nplugin = \"test.synthetic\"\nbatch = 5\n\n[nodes.model]");
  bad = replace(bad, "target = \"data.y\"", "target = \"other.y\"");
  auto d = diagnose(bad);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].pos.line, 20);
  EXPECT_EQ(d[0].pos.column, 10);
  EXPECT_NE(d[0].message.find("'other.y' into input 'target' of node 'loss': dimension 0 is 5 but 8"), std::string::npos)
      << d[0].message;
  EXPECT_NE(d[0].hint.find("'model.y' (both are B)"), std::string::npos) << d[0].hint;
  expect_no_run_dir(bad);
}

TEST(Graph, PortTypeGrammar) {
  auto t = parse_port_type("logits:f32[B, T, {vocab}]");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->name, "logits");
  EXPECT_EQ(t->dtype, "f32");
  EXPECT_TRUE(t->shaped);
  EXPECT_EQ(t->dims, (std::vector<std::string>{"B", "T", "{vocab}"}));
  EXPECT_EQ(dim_kind("{vocab}"), DimKind::param);
  EXPECT_EQ(dim_kind("12"), DimKind::number);
  EXPECT_EQ(dim_kind("?"), DimKind::any);
  auto scalar = parse_port_type("loss:f32[]");
  ASSERT_TRUE(scalar);
  EXPECT_TRUE(scalar->shaped);
  EXPECT_TRUE(scalar->dims.empty());
  auto plain = parse_port_type("tokens");
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->shaped);
  EXPECT_TRUE(plain->dtype.empty());
  for (const char* bad : {"", "lo gits", "logits:", "logits:f32[B,", "logits:f32[B,,T]", "logits:f32[{}]", "x:[B]x"})
    EXPECT_FALSE(parse_port_type(bad)) << bad;
}

TEST(Graph, StageKeysOfTheWrongTypeOrRange) {
  std::string bad = replace(kGood, "steps = 3", "steps = 3\nlog_every = 0\ncheckpoint = { every = \"10\" }\nname = 4");
  auto d = diagnose(bad);
  ASSERT_EQ(d.size(), 3u);
  std::sort(d.begin(), d.end(), [](const Diagnostic& a, const Diagnostic& b) { return a.pos.line < b.pos.line; });
  EXPECT_EQ(d[0].pos.line, 20);
  EXPECT_EQ(d[0].pos.column, 13);
  EXPECT_NE(d[0].message.find("'log_every' in stage 0 must be at least 1"), std::string::npos) << d[0].message;
  EXPECT_EQ(d[1].pos.line, 21);
  EXPECT_EQ(d[1].pos.column, 24);
  EXPECT_NE(d[1].message.find("'every' in checkpoint of stage 0 must be an integer, got a string"), std::string::npos)
      << d[1].message;
  EXPECT_EQ(d[2].pos.line, 22);
  EXPECT_NE(d[2].message.find("'name' in stage 0 must be a string"), std::string::npos) << d[2].message;
  expect_no_run_dir(bad);
}

TEST(Graph, TrainedModelsAndDataMustFeedTheStagesLosses) {
  // A second model that no loss reads, trained; and a data list that leaves out the data the
  // loss reads. Both are graph errors, found before anything runs.
  std::string bad = replace(kGood, "[nodes.loss]", "[nodes.idle]\nplugin = \"test.linear\"\nx = \"data.x\"\n\n[nodes.loss]");
  bad = replace(bad, "train = [\"model\"]", "train = [\"model\", \"idle\"]\ndata = []");
  auto d = diagnose(bad);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].pos.line, 24);
  EXPECT_EQ(d[0].pos.column, 9);
  EXPECT_NE(d[0].message.find("node 'idle' is trained in stage 0 but none of its losses depends on it"), std::string::npos)
      << d[0].message;
  bad = replace(bad, "data = []", "data = [\"other\"]");
  bad = replace(bad, "[nodes.idle]", "[nodes.other]\nplugin = \"test.synthetic\"\n\n[nodes.idle]");
  d = diagnose(bad);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_NE(d[1].message.find("read data node 'data', which is not in its data list"), std::string::npos) << d[1].message;
  EXPECT_EQ(d[1].pos.line, 28);
  expect_no_run_dir(bad);
}

TEST(Graph, AllProblemsAreReportedTogether) {
  std::string bad = replace(kGood, "batch = 8", "batch = \"eight\"");
  bad = replace(bad, "x = \"data.x\"", "x = \"dta.x\"");
  bad = replace(bad, "steps = 3", "steps = 3\nwarmup = 2");
  auto d = diagnose(bad);
  EXPECT_EQ(d.size(), 3u);
}

TEST(Graph, SetOverridesAndBadPaths) {
  GraphSpec g = load_graph("g.toml", kGood, {"stages.0.steps=7", "nodes.data.dim=6", "nodes.model.dim=6"}, registry());
  EXPECT_EQ(g.stages[0].steps, 7);
  EXPECT_EQ(json_int(g.node("data")->params.at("dim")), 6);
  auto d = diagnose(kGood, {"nodes.dta.batch=3"});
  ASSERT_EQ(d.size(), 1u);
  EXPECT_NE(d[0].message.find("'dta' does not exist"), std::string::npos) << d[0].message;
  EXPECT_NE(d[0].hint.find("did you mean 'data'"), std::string::npos);
  auto d2 = diagnose(kGood, {"stages.4.steps=3"});
  ASSERT_EQ(d2.size(), 1u);
  auto d3 = diagnose(kGood, {"nodes.data.batchsize=3"});  // a new key that the schema refuses
  ASSERT_EQ(d3.size(), 1u);
  EXPECT_NE(d3[0].message.find("unknown key 'batchsize'"), std::string::npos);
}
