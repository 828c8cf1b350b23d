// Growth ops and knowledge inheritance inside real runs: what the runtime does around them
// (optimizer state, refusals, α across stages, the teacher's cost), through `scion run`.
#include <gtest/gtest.h>

#include <set>

#include "fixtures.h"
#include "scion_cli.h"

namespace {

// A tiny byte-level GPT trained for a few steps, then a second stage that starts with `ops`.
std::string two_stage_graph(const std::string& ops, int first_steps = 3, const std::string& extra_stage = "") {
  return tiny_gpt_graph(
      {.model = {.layers = 2},
       .stages = "[[stages]]\nname = \"small\"\nsteps = " + std::to_string(first_steps) +
                 "\ntrain = [\"model\"]\nlosses = [\"lm\"]\n"
                 "[[stages]]\nname = \"grown\"\nsteps = 1\ntrain = [\"model\"]\nlosses = [\"lm\"]\nops = [ " +
                 ops + " ]\n" + extra_stage});
}

Result run_graph(const fs::path& d, const std::string& text) {
  std::ofstream(d / "g.toml") << text;
  return sh("run " + (d / "g.toml").string() + " --plain --out " + (d / "run").string());
}

int64_t step_count(const std::map<std::string, Tensor>& st, const std::string& param) {
  auto it = st.find("model." + param + ".step");
  return it == st.end() ? -1 : it->second.to_vector_i64()[0];
}

}  // namespace

// Stacking copies layer i to i + L: the copy continues layer i's moments (3 updates before the
// growth, 1 after), as StackingBERT's --double-optimizer; nothing restarts.
TEST(GrowthRuns, StackedLayersContinueTheirSourceLayersOptimizerState) {
  const fs::path d = temp("stack_state");
  const Result r = run_graph(d, two_stage_graph(R"({ plugin = "grow.stack", target = "model" })"));
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto st = last_optimizer_state(d / "run");
  for (int l = 0; l < 4; ++l)
    EXPECT_EQ(step_count(st, "transformer.h." + std::to_string(l) + ".mlp.c_fc.weight"), 4) << "layer " << l;
  EXPECT_EQ(step_count(st, "transformer.wte.weight"), 4);
  fs::remove_all(d);
}

// An identity block inserted after layer 0 is new: its moments restart; old layer 1, now
// layer 2, keeps its own (it used to inherit the shifted name's state).
TEST(GrowthRuns, IdentityBlocksRestartTheirOptimizerStateAndShiftedLayersKeepTheirs) {
  const fs::path d = temp("deeper_state");
  const Result r = run_graph(d, two_stage_graph(R"({ plugin = "grow.net2deeper", target = "model", after = ["0"] })"));
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto st = last_optimizer_state(d / "run");
  EXPECT_EQ(step_count(st, "transformer.h.0.attn.c_attn.weight"), 4);
  EXPECT_EQ(step_count(st, "transformer.h.1.attn.c_attn.weight"), 1);
  EXPECT_EQ(step_count(st, "transformer.h.2.attn.c_attn.weight"), 4);
  EXPECT_EQ(step_count(st, "transformer.h.1.attn.c_proj.weight"), 1);
  fs::remove_all(d);
}

TEST(GrowthRuns, Bert2BertRefusesToShrinkOrToLeaveTheModelAsItIs) {
  const fs::path d = temp("b2b_bad");
  Result r = run_graph(d, two_stage_graph(R"({ plugin = "grow.bert2bert", target = "model", layers = 1 })", 1));
  EXPECT_NE(r.rc, 0);
  // Refused before anything runs, at the op's table (growth::check_target).
  EXPECT_NE(r.out.find("g.toml:35:65: error: op 'grow.bert2bert' of stage 1: layers 1 is fewer than the 2 layers of model 'model'"),
            std::string::npos) << r.out;
  r = run_graph(d, two_stage_graph(R"({ plugin = "grow.bert2bert", target = "model", width = 16, layers = 2 })", 1));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("do not grow the model"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("hint"), std::string::npos) << r.out;
  // FFN-only growth is growth: it widens the FFN (no longer silently ignored).
  r = run_graph(d, two_stage_graph(R"({ plugin = "grow.bert2bert", target = "model", ffn = 96 })", 1));
  ASSERT_EQ(r.rc, 0) << r.out;
  auto w = safetensors::load((d / "run" / "model.safetensors").string());
  bool found = false;
  for (const auto& [n, t] : w.tensors)
    if (n == "transformer.h.1.mlp.c_fc.weight") {
      found = true;
      EXPECT_EQ(t.shape(), (Shape{16, 96}));
    }
  EXPECT_TRUE(found);
  fs::remove_all(d);
}

// Growing a model while its grow.masked ramp still runs would drop the masks (a jump in what
// it computes); after the ramp it is fine.
TEST(GrowthRuns, NoGrowthInsideAMaskedRamp) {
  const fs::path d = temp("mid_ramp");
  const std::string wider = R"(
[[stages]]
name = "wider"
steps = 1
train = ["model"]
losses = ["lm"]
ops = [ { plugin = "grow.net2wider", target = "model", width = 32 } ]
)";
  Result r = run_graph(d, two_stage_graph(R"({ plugin = "grow.masked", target = "model", layers = 3, ramp_steps = 5 })",
                                          2, wider));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("1 update(s) into a grow.masked gate ramp"), std::string::npos) << r.out;
  r = run_graph(d, two_stage_graph(R"({ plugin = "grow.masked", target = "model", layers = 3, ramp_steps = 1 })", 2,
                                   wider));
  EXPECT_EQ(r.rc, 0) << r.out;
  fs::remove_all(d);
}

// One loss.inherit node over two stages: α counts the updates it has taken part in, across
// the stage boundary (it does not restart at 1), and once it reaches 0 the teacher stops
// running and costing FLOPs.
TEST(GrowthRuns, InheritanceAlphaContinuesAcrossStagesAndTheTeacherStopsAtZero) {
  const fs::path d = temp("alpha_stages");
  std::string g = two_stage_graph("", 4);
  g = g.substr(0, g.find("[[stages]]"));
  g += R"(
[nodes.teacher]
plugin = "model.gpt"
vocab = 257
context = 16
layers = 1
width = 32
heads = 2
frozen = true
tokens = "corpus.tokens"
[nodes.inherit]
plugin = "loss.inherit"
student = "model.logits"
teacher = "teacher.logits"
targets = "corpus.targets"
schedule = "linear"
alpha = 1.0
steps = 6
[[stages]]
name = "a"
steps = 4
train = ["model"]
losses = ["inherit"]
[[stages]]
name = "b"
steps = 4
train = ["model"]
losses = ["inherit"]
optimizer = { lr = 5e-4 }
)";
  const Result r = run_graph(d, g);
  ASSERT_EQ(r.rc, 0) << r.out;
  const auto m = metrics(d / "run");
  ASSERT_EQ(m.size(), 8u);
  std::vector<double> delta;
  double prev = 0;
  for (size_t i = 0; i < m.size(); ++i) {
    EXPECT_NEAR(json_number(m[i].at("inherit/alpha")), std::max(0.0, 1.0 - double(i) / 6.0), 1e-8) << "update " << i;
    EXPECT_EQ(m[i].contains("inherit/kl"), i < 6) << "update " << i;
    delta.push_back(json_number(m[i].at("flops")) - prev);
    prev = json_number(m[i].at("flops"));
  }
  // Updates 1..5 pay for the teacher's forward, 6 and 7 do not.
  EXPECT_DOUBLE_EQ(delta[1], delta[5]);
  EXPECT_DOUBLE_EQ(delta[6], delta[7]);
  EXPECT_LT(delta[6], delta[5]);
  fs::remove_all(d);
}

// G_stack's recipe starts AdamW afresh at growth: every moment restarts, the embeddings'
// too; with optimizer = "carry" each copy continues its source layer's moments.
TEST(GrowthRuns, GStackResetsTheOptimizerOrCarriesEachCopysSourceMoments) {
  const fs::path d = temp("gstack_state");
  Result r = run_graph(d, two_stage_graph(R"({ plugin = "grow.gstack", target = "model", factor = 3 })"));
  ASSERT_EQ(r.rc, 0) << r.out;
  auto st = last_optimizer_state(d / "run");
  for (int l = 0; l < 6; ++l)
    EXPECT_EQ(step_count(st, "transformer.h." + std::to_string(l) + ".mlp.c_fc.weight"), 1) << "layer " << l;
  EXPECT_EQ(step_count(st, "transformer.wte.weight"), 1);
  std::set<std::string> names;
  for (const auto& [n, t] : safetensors::load((d / "run" / "model.safetensors").string()).tensors) names.insert(n);
  EXPECT_TRUE(names.count("transformer.h.5.mlp.c_fc.weight")) << "2 layers stacked 3 times";
  EXPECT_FALSE(names.count("transformer.h.6.mlp.c_fc.weight"));
  r = run_graph(d, two_stage_graph(R"({ plugin = "grow.gstack", target = "model", factor = 2, optimizer = "carry" })"));
  ASSERT_EQ(r.rc, 0) << r.out;
  st = last_optimizer_state(d / "run");
  for (int l = 0; l < 4; ++l)
    EXPECT_EQ(step_count(st, "transformer.h." + std::to_string(l) + ".mlp.c_fc.weight"), 4) << "layer " << l;
  fs::remove_all(d);
}

// HyperCloning doubles every width in a run (heads at a fixed head size) and restarts the
// optimizer; the cloned model trains on.
TEST(GrowthRuns, HyperCloneDoublesTheWidthAndRestartsTheOptimizer) {
  const fs::path d = temp("hyperclone_run");
  const Result r = run_graph(d, two_stage_graph(R"({ plugin = "grow.hyperclone", target = "model", snr_db = 20.0 })"));
  ASSERT_EQ(r.rc, 0) << r.out;
  const Json cfg = json_parse(safetensors::load_metadata((d / "run" / "model.safetensors").string()).at(
      checkpoint::kConfigKey));
  EXPECT_EQ(json_int(cfg.at("width")), 32);
  EXPECT_EQ(json_int(cfg.at("heads")), 4);
  EXPECT_FALSE(cfg.at("tied").get<bool>());
  const auto st = last_optimizer_state(d / "run");
  EXPECT_EQ(step_count(st, "transformer.h.1.mlp.c_fc.weight"), 1);
  fs::remove_all(d);
}

// What validate refuses of G_stack before anything runs (a depth that is not a multiple of the
// model's, a factor below 2) with the place in the file, and what it prints: the growth-timing
// rule for the graph's target.
TEST(GrowthRuns, ValidateRefusesImpossibleStacksAndPrintsTheGrowthTimingRule) {
  const fs::path d = temp("gstack_validate");
  auto validate = [&](const std::string& op) {
    std::ofstream(d / "g.toml") << two_stage_graph(op);
    return sh("validate " + (d / "g.toml").string());
  };
  Result r = validate(R"({ plugin = "grow.gstack", target = "model", layers = 5 })");
  EXPECT_EQ(r.rc >> 8, 3) << r.out;
  EXPECT_NE(r.out.find("g.toml:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("layers 5 is not a multiple (above 1) of the 2 layers of 'model'"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("hint: G_stack stacks the whole layer sequence"), std::string::npos) << r.out;
  r = validate(R"({ plugin = "grow.gstack", target = "model", factor = 1 })");
  EXPECT_EQ(r.rc >> 8, 3) << r.out;
  EXPECT_NE(r.out.find("factor"), std::string::npos) << r.out;
  r = validate(R"({ plugin = "grow.gstack", target = "model", factor = 4 })");
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("note: op 'grow.gstack' of stage 1: G_stack's growth-timing rule"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("(8 layers)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("this graph grows after 96 tokens"), std::string::npos) << r.out;  // 3 updates of 2 x 16
  fs::remove_all(d);
}

// schedule = "continue": the second stage goes on with the first stage's schedule (one
// warmup and cosine over both), where the default restarts it.
TEST(GrowthRuns, AStageCanContinueThePreviousStagesSchedule) {
  const fs::path d = temp("schedule_continue");
  auto lrs = [&](const std::string& stages) {
    std::ofstream(d / "g.toml") << tiny_gpt_graph({.stages = stages});
    const Result r = sh("run " + (d / "g.toml").string() + " --plain --out " + (d / "run").string());
    EXPECT_EQ(r.rc, 0) << r.out;
    std::vector<double> out;
    for (const Json& m : metrics(d / "run"))
      if (m.contains("lr")) out.push_back(json_number(m.at("lr")));
    fs::remove_all(d / "run");
    return out;
  };
  const std::string opt = R"(optimizer = { lr = 1e-3, warmup = 2, decay = "cosine", min_lr = 1e-4 )";
  const auto one = lrs("[[stages]]\nsteps = 8\ntrain = [\"model\"]\nlosses = [\"lm\"]\n" + opt + "}\n");
  const auto two = lrs("[[stages]]\nsteps = 3\ntrain = [\"model\"]\nlosses = [\"lm\"]\n" + opt + "}\n" +
                       "[[stages]]\nsteps = 5\ntrain = [\"model\"]\nlosses = [\"lm\"]\n" + opt +
                       ", schedule = \"continue\" }\n");
  const auto restart = lrs("[[stages]]\nsteps = 3\ntrain = [\"model\"]\nlosses = [\"lm\"]\n" + opt + "}\n" +
                           "[[stages]]\nsteps = 5\ntrain = [\"model\"]\nlosses = [\"lm\"]\n" + opt + "}\n");
  ASSERT_EQ(one.size(), 8u);
  ASSERT_EQ(two.size(), 8u);
  for (size_t i = 0; i < 8; ++i) EXPECT_DOUBLE_EQ(two[i], one[i]) << "update " << i;
  ASSERT_EQ(restart.size(), 8u);
  EXPECT_DOUBLE_EQ(restart[3], 5e-4) << "the second stage's own warmup";
  // The first stage cannot continue a schedule.
  std::ofstream(d / "g.toml") << tiny_gpt_graph(
      {.stages = "[[stages]]\nsteps = 3\ntrain = [\"model\"]\nlosses = [\"lm\"]\n" + opt + ", schedule = \"continue\" }\n"});
  const Result bad = sh("validate " + (d / "g.toml").string());
  EXPECT_EQ(bad.rc >> 8, 3) << bad.out;
  EXPECT_NE(bad.out.find("no stage before it"), std::string::npos) << bad.out;
  fs::remove_all(d);
}
