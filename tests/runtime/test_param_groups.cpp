// Parameter groups, parameters owned by nodes other than models, and the rule that a
// parameter without a gradient is not stepped.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "runtime/executor.h"
#include "scion/safetensors.h"
#include "in_process.h"

using namespace scion;
using namespace scion::runtime;
using namespace scion::tests;
namespace fs = std::filesystem;

namespace {
std::map<std::string, Tensor> load_map(const fs::path& f) {
  auto l = safetensors::load(f.string());
  return {l.tensors.begin(), l.tensors.end()};
}

// A linear model fitted under the constraint mean(pred) <= bound, the multiplier λ owned by
// the loss node and trained in a group of its own: SGD, its own lr, ascent.
const char* kLagrangian = R"(
[run]
seed = 11
[nodes.data]
plugin = "test.synthetic"
batch = 16
[nodes.model]
plugin = "test.linear"
x = "data.x"
[nodes.lag]
plugin = "test.lagrangian"
pred = "model.y"
target = "data.y"
bound = -1.0
[[stages]]
name = "fit"
steps = 12
train = ["model", "lag"]
losses = ["lag"]
optimizer = { lr = 0.05, decay = "constant", clip = 0.0, weight_decay = 0.0 }
checkpoint = { every = 4 }
param_groups = [ { nodes = ["lag"], match = "*", plugin = "optim.sgd", lr = 0.5, sign = -1 } ]
)";
}  // namespace

TEST(ParamGroups, AMultiplierOwnedByALossIsTrainedByAscentWithItsOwnOptimizer) {
  const fs::path dir = temp("lag");
  run_graph(kLagrangian, dir / "run");
  const auto m = metrics(dir / "run");
  ASSERT_EQ(m.size(), 12u);
  // λ is logged before each update: λ_{t+1} = λ_t + 0.5·violation_t, SGD stepping up the
  // gradient ∂L/∂λ = violation (a descent step or AdamW's normalised step would not match).
  double lambda = 0, moved = 0;
  for (size_t t = 0; t < m.size(); ++t) {
    EXPECT_NEAR(json_number(m[t].at("lag/lambda")), lambda, 1e-5) << "update " << t;
    const double v = json_number(m[t].at("lag/violation"));
    lambda += 0.5 * v;
    moved += std::abs(v);
  }
  ASSERT_GT(moved, 0.1);
  const auto fin = load_map(dir / "run" / "lag.safetensors");
  ASSERT_TRUE(fin.count("lambda"));
  EXPECT_NEAR(fin.at("lambda").item(), lambda, 1e-5);
  // Optimizer state: the model's AdamW moments; λ's SGD (no momentum) keeps none, and AdamW
  // never saw λ.
  auto st = load_map(dir / "run" / "checkpoints" / "step_12" / "optimizer.safetensors");
  EXPECT_TRUE(st.count("model.weight.exp_avg"));
  EXPECT_FALSE(st.count("lag.lambda.exp_avg"));
  EXPECT_FALSE(st.count("lag.lambda.step"));
  EXPECT_TRUE(fs::exists(dir / "run" / "checkpoints" / "step_12" / "lag.safetensors"));
  fs::remove_all(dir);
}

TEST(ParamGroups, FirstMatchWinsAndTheScheduleScalesEveryGroup) {
  const fs::path dir = temp("first");
  std::string text = kLagrangian;
  // Group 0 takes the model's bias at lr 0: it must stay put although group 1 matches it too.
  // Group 2 is λ's, under the stage's warmup and linear decay as a multiplier of its lr.
  const std::string pg = R"(param_groups = [ { nodes = ["lag"], match = "*", plugin = "optim.sgd", lr = 0.5, sign = -1 } ])";
  text.replace(text.find(pg), pg.size(),
               R"(param_groups = [ { nodes = ["model"], match = "bias", lr = 0.0 },
                 { nodes = ["model"], match = "*", lr = 0.1 },
                 { nodes = ["lag"], plugin = "optim.sgd", lr = 0.5, sign = -1 } ])");
  text.replace(text.find("decay = \"constant\""), 18, "decay = \"linear\", warmup = 2");
  run_graph(text, dir / "run");
  run_graph(text, dir / "one", {"stages.0.steps=1"});
  const auto m = metrics(dir / "run");
  ASSERT_EQ(m.size(), 12u);
  EXPECT_NEAR(json_number(m[0].at("lr")), 0.05 / 2, 1e-12);  // the stage's lr: warmup 1 of 2
  double lambda = 0;
  for (size_t t = 0; t < m.size(); ++t) {
    EXPECT_NEAR(json_number(m[t].at("lag/lambda")), lambda, 1e-5) << "update " << t;
    lambda += 0.5 * (json_number(m[t].at("lr")) / 0.05) * json_number(m[t].at("lag/violation"));
  }
  EXPECT_GT(std::abs(lambda), 0.05);
  const auto after12 = load_map(dir / "run" / "model.safetensors"), after1 = load_map(dir / "one" / "model.safetensors");
  EXPECT_EQ(after12.at("bias").to_vector(), after1.at("bias").to_vector());  // lr 0: unchanged
  EXPECT_NE(after12.at("weight").to_vector(), after1.at("weight").to_vector());
  auto st = load_map(dir / "run" / "checkpoints" / "step_12" / "optimizer.safetensors");
  EXPECT_EQ(st.at("model.bias.step").to_vector_i64()[0], 12);  // stepped, at lr 0
  EXPECT_EQ(st.at("model.weight.step").to_vector_i64()[0], 12);
  fs::remove_all(dir);
}

TEST(ParamGroups, AGroupOutsideClippingAndTheScheduleStepsAtItsPeakRateOnItsWholeGradient) {
  // λ's group leaves the stage's clipping (a tiny clip norm would shrink its gradient) and its
  // warmup and linear decay: λ_{t+1} = λ_t + 0.5·violation_t at every update, as CoFi's
  // reference steps its multipliers with an optimizer of their own.
  const fs::path dir = temp("noclip");
  std::string text = kLagrangian;
  const std::string pg = R"(param_groups = [ { nodes = ["lag"], match = "*", plugin = "optim.sgd", lr = 0.5, sign = -1 } ])";
  text.replace(text.find(pg), pg.size(),
               R"(param_groups = [ { nodes = ["lag"], plugin = "optim.sgd", lr = 0.5, sign = -1, clip = false, lr_schedule = false } ])");
  text.replace(text.find("decay = \"constant\", clip = 0.0"), 30, "decay = \"linear\", warmup = 3, clip = 0.001");
  run_graph(text, dir / "run");
  const auto m = metrics(dir / "run");
  ASSERT_EQ(m.size(), 12u);
  EXPECT_NEAR(json_number(m[0].at("lr")), 0.05 / 3, 1e-12);  // the stage's schedule runs
  double lambda = 0, moved = 0;
  for (size_t t = 0; t < m.size(); ++t) {
    EXPECT_NEAR(json_number(m[t].at("lag/lambda")), lambda, 1e-5) << "update " << t;
    lambda += 0.5 * json_number(m[t].at("lag/violation"));
    moved += std::abs(json_number(m[t].at("lag/violation")));
  }
  ASSERT_GT(moved, 0.1);
  // The refusal of a key that is not a boolean.
  const std::string e = graph_error(std::string(kLagrangian).replace(std::string(kLagrangian).find(pg), pg.size(),
                                                                     R"(param_groups = [ { nodes = ["lag"], clip = 1 } ])"));
  EXPECT_NE(e.find("'clip' in a parameter group of stage 0 must be true or false"), std::string::npos) << e;
  fs::remove_all(dir);
}

// The bias takes part only in updates whose run count is a multiple of 3 (updates 1 and 4):
// in updates 2 and 3 it gets no gradient and must not move at all (no momentum, no weight
// decay), nor its moments or step count change. Zero-filled gradients would move it.
TEST(ParamGroups, AParameterWithoutAGradientIsNotStepped) {
  const fs::path dir = temp("nograd");
  const std::string text = R"(
[run]
seed = 4
[nodes.data]
plugin = "test.synthetic"
[nodes.model]
plugin = "test.linear"
x = "data.x"
bias_every = 3
[nodes.mse]
plugin = "test.mse"
pred = "model.y"
target = "data.y"
[[stages]]
steps = 1
train = ["model"]
losses = ["mse"]
optimizer = { lr = 0.1, decay = "constant", weight_decay = 0.1, no_decay_1d = false }
)";
  std::vector<std::map<std::string, Tensor>> w, st;
  for (int k = 1; k <= 4; ++k) {
    const fs::path out = dir / ("k" + std::to_string(k));
    run_graph(text, out, {"stages.0.steps=" + std::to_string(k)});
    w.push_back(load_map(out / "model.safetensors"));
    st.push_back(load_map(out / "checkpoints" / ("step_" + std::to_string(k)) / "optimizer.safetensors"));
  }
  for (int k : {1, 2}) {
    EXPECT_EQ(w[k].at("bias").to_vector(), w[0].at("bias").to_vector()) << "after update " << k + 1;
    EXPECT_EQ(st[k].at("model.bias.exp_avg").to_vector(), st[0].at("model.bias.exp_avg").to_vector());
    EXPECT_EQ(st[k].at("model.bias.exp_avg_sq").to_vector(), st[0].at("model.bias.exp_avg_sq").to_vector());
    EXPECT_EQ(st[k].at("model.bias.step").to_vector_i64()[0], 1);
    EXPECT_NE(w[k].at("weight").to_vector(), w[k - 1].at("weight").to_vector());  // the weight trains on
  }
  EXPECT_NE(w[3].at("bias").to_vector(), w[2].at("bias").to_vector());  // update 4 uses it again
  EXPECT_EQ(st[3].at("model.bias.step").to_vector_i64()[0], 2);
  EXPECT_EQ(st[3].at("model.weight.step").to_vector_i64()[0], 4);
  fs::remove_all(dir);
}

// ---- refusals --------------------------------------------------------------------------------
namespace {
std::string with_groups(const std::string& groups) {
  std::string text = kLagrangian;
  const std::string pg = R"(param_groups = [ { nodes = ["lag"], match = "*", plugin = "optim.sgd", lr = 0.5, sign = -1 } ])";
  text.replace(text.find(pg), pg.size(), "param_groups = [ " + groups + " ]");
  return text;
}
}  // namespace

TEST(ParamGroups, RefusalsInTheGraphNameTheirPlaceAndAHint) {
  // The param_groups line is line 22 of kLagrangian; its first group starts at column 18.
  std::string e = graph_error(with_groups(R"({ nodes = ["lagg"] })"));
  EXPECT_NE(e.find("g.toml:22:29: error: node 'lagg' in a parameter group of stage 0 does not exist"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'lag'?"), std::string::npos) << e;
  e = graph_error(with_groups(R"({ nodes = ["data"] })"));
  EXPECT_NE(e.find("g.toml:22:29: error: node 'data' in a parameter group of stage 0 is not trained in it"), std::string::npos) << e;
  EXPECT_NE(e.find("add 'data' to train"), std::string::npos) << e;
  e = graph_error(with_groups(R"({ nodes = ["lag"], sign = 2 })"));
  EXPECT_NE(e.find("g.toml:22:44: error: 'sign' in a parameter group of stage 0 must be 1 or -1"), std::string::npos) << e;
  e = graph_error(with_groups(R"({ nodes = ["lag"], weight_decy = 0.0 })"));
  EXPECT_NE(e.find("unknown key 'weight_decy' in a parameter group of stage 0"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'weight_decay'?"), std::string::npos) << e;
  e = graph_error(with_groups(R"({ nodes = ["lag"], plugin = "optim.sdg" })"));
  EXPECT_NE(e.find("'optim.sdg' is not an optimizer plugin"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean 'optim.sgd'?"), std::string::npos) << e;
  e = graph_error(with_groups(R"({ nodes = ["lag"], plugin = "optim.sgd", momentum = "high" })"));
  EXPECT_NE(e.find("'momentum' in a parameter group of stage 0 must be"), std::string::npos) << e;
  // A data node cannot be trained (it owns no parameters by kind).
  std::string t = kLagrangian;
  t.replace(t.find(R"(train = ["model", "lag"])"), 24, R"(train = ["model", "data"])");
  e = graph_error(t);
  EXPECT_NE(e.find("node 'data' in 'train' of stage 0 is a data, not a model, loss or prompt"), std::string::npos) << e;
}

TEST(ParamGroups, AGroupThatSelectsNothingIsRefusedBeforeTheFirstUpdate) {
  const fs::path dir = temp("nothing");
  try {
    run_graph(with_groups(R"({ nodes = ["model"], match = "*.bias" })"), dir / "run");
    FAIL() << "a group selecting nothing ran";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("g.toml:22:18: parameter group 0 of stage 'fit' selects no parameter: none of model has a parameter "
                     "matching '*.bias'"),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("hint:"), std::string::npos) << m;
  }
  EXPECT_FALSE(fs::exists(dir / "run" / "metrics.jsonl"));  // nothing ran, nothing written
  // A group whose parameters an earlier group took selects nothing either.
  try {
    run_graph(with_groups(R"({ nodes = ["lag"] }, { nodes = ["lag"], match = "lambda" })"), dir / "run");
    FAIL() << "a shadowed group ran";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("parameter group 1 of stage 'fit' selects no parameter"), std::string::npos)
        << e.what();
  }
  // A trained loss that owns no parameters.
  std::string t = R"(
[nodes.data]
plugin = "test.synthetic"
[nodes.model]
plugin = "test.linear"
x = "data.x"
[nodes.mse]
plugin = "test.mse"
pred = "model.y"
target = "data.y"
[[stages]]
name = "s"
steps = 2
train = ["model", "mse"]
losses = ["mse"]
)";
  try {
    run_graph(t, dir / "run2");
    FAIL() << "trained a node without parameters";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("g.toml:11:1: stage 's' trains node 'mse', which has no trainable parameters"),
              std::string::npos)
        << e.what();
  }
  fs::remove_all(dir);
}
