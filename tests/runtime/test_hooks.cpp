// The training loop's hooks (Plugin::begin_step, end_step, end_stage, observe) and prompt
// nodes in the step graph: where each is called, and that what end_stage keeps is in the
// checkpoint that closes the stage.
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

TEST(Hooks, CalledAroundEveryStepAtEvaluationAndAtTheEndOfEachStage) {
  const fs::path dir = temp("order");
  const std::string trace = (dir / "trace.txt").string();
  const std::string g = R"(
[run]
seed = 3
[nodes.data]
plugin = "test.synthetic"
[nodes.model]
plugin = "test.linear"
x = "data.x"
[nodes.hooks]
plugin = "test.hooks"
pred = "model.y"
target = "data.y"
trace = ")" + trace + R"("
[nodes.count]
plugin = "test.step_count"
[[stages]]
name = "a"
steps = 2
train = ["model"]
losses = ["hooks"]
eval = { every = 2, evaluators = ["count"] }
[[stages]]
name = "b"
steps = 1
train = ["model"]
losses = ["hooks"]
)";
  run_graph(g, dir / "run");
  const std::vector<std::string> want = {
      "begin_step 0", "compute 0", "end_step 0",  //
      "begin_step 1", "compute 1", "end_step 1",  //
      "observe count/step=2",                     // the evaluation after update 2
      "end_stage a",                              //
      "begin_step 2", "compute 2", "end_step 2", "end_stage b"};
  EXPECT_EQ(lines(trace), want);
  // end_stage ran before the checkpoint that closes stage a: its state holds one stage end.
  std::ifstream st(dir / "run" / "checkpoints" / "step_2" / "state.json");
  const Json state = json_parse(std::string(std::istreambuf_iterator<char>(st), {}));
  EXPECT_EQ(json_int(state.at("nodes").at("hooks")), 1);
  fs::remove_all(dir);
}

TEST(Hooks, APromptNodeRunsBetweenDataAndModelAndTrainsItsOwnParameters) {
  const fs::path dir = temp("prompt");
  const std::string g = R"(
[run]
seed = 5
[nodes.data]
plugin = "test.synthetic"
[nodes.shift]
plugin = "test.shift"
x = "data.x"
[nodes.model]
plugin = "test.linear"
x = "shift.x"
bias_every = 0
[nodes.loss]
plugin = "test.mse"
pred = "model.y"
target = "data.y"
[[stages]]
name = "tune"
steps = 6
train = ["shift"]
losses = ["loss"]
optimizer = { lr = 0.1, decay = "constant" }
)";
  run_graph(g, dir / "run");
  // The prompt's offset moved from zero; the model, not trained, kept its initial weights
  // (those of the same graph trained for no update: the first checkpoint's, taken at step 0
  // of a run whose prompt lr is 0).
  auto shift = safetensors::load((dir / "run" / "shift.safetensors").string()).tensors;
  ASSERT_EQ(shift.size(), 1u);
  double moved = 0;
  for (float v : shift[0].second.to_vector()) moved += std::abs(v);
  EXPECT_GT(moved, 1e-3);
  std::string frozen = g;
  frozen.replace(frozen.find("lr = 0.1"), 8, "lr = 0.0");
  run_graph(frozen, dir / "still");
  auto a = safetensors::load((dir / "run" / "model.safetensors").string()).tensors;
  auto b = safetensors::load((dir / "still" / "model.safetensors").string()).tensors;
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].second.to_vector(), b[i].second.to_vector()) << a[i].first;
  double still = 0;
  for (float v : safetensors::load((dir / "still" / "shift.safetensors").string()).tensors[0].second.to_vector())
    still += std::abs(v);
  EXPECT_EQ(still, 0.0);
  fs::remove_all(dir);
}
