// The executor: concurrency of independent nodes, training, run directory contents,
// checkpoint atomicity.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "runtime/executor.h"
#include "scion/checkpoint.h"
#include "scion/files.h"
#include "scion/safetensors.h"
#include "in_process.h"

using namespace scion;
using namespace scion::runtime;
using namespace scion::tests;
namespace fs = std::filesystem;

TEST(Executor, IndependentNodesRunConcurrentlyAndDependentsWait) {
  const fs::path dir = temp("conc");
  const std::string trace = (dir / "trace.txt").string();
  const std::string text = R"(
[nodes.data]
plugin = "test.synthetic"
[nodes.a]
plugin = "test.linear"
x = "data.x"
sleep_ms = 300
trace = ")" + trace + R"("
[nodes.b]
plugin = "test.linear"
x = "data.x"
sleep_ms = 300
trace = ")" + trace + R"("
[nodes.loss]
plugin = "test.mse"
pred = "a.y"
other = "b.y"
target = "data.y"
trace = ")" + trace + R"("
[[stages]]
steps = 1
train = ["a", "b"]
losses = ["loss"]
)";
  RunOptions o;
  o.out_dir = (dir / "run").string();
  o.progress = 0;
  o.threads = 2;
  Executor ex(load_graph("c.toml", text, {}, registry()), registry(), o);
  ex.run();
  std::map<std::string, double> t;
  for (const auto& l : lines(trace)) {
    std::istringstream is(l);
    std::string node, what;
    double when;
    is >> node >> what >> when;
    t[node + " " + what] = when;
  }
  ASSERT_EQ(t.size(), 6u);
  // a and b overlap: each starts before the other ends.
  EXPECT_LT(t["a start"], t["b end"]);
  EXPECT_LT(t["b start"], t["a end"]);
  // the loss waits for both.
  EXPECT_GE(t["loss start"], t["a end"]);
  EXPECT_GE(t["loss start"], t["b end"]);
  fs::remove_all(dir);
}

TEST(Executor, TrainsAndWritesTheRunDirectory) {
  const fs::path dir = temp("train");
  const std::string text = R"(
[run]
name = "reg"
seed = 3
[nodes.data]
plugin = "test.synthetic"
batch = 32
[nodes.model]
plugin = "test.linear"
x = "data.x"
[nodes.mse]
plugin = "test.mse"
pred = "model.y"
target = "data.y"
[[stages]]
name = "fit"
steps = 60
train = ["model"]
losses = { mse = 2.0 }
optimizer = { plugin = "optim.adamw", lr = 0.2, weight_decay = 0.0, warmup = 5, decay = "linear" }
checkpoint = { every = 20 }
)";
  RunOptions o;
  o.out_dir = (dir / "run").string();
  o.progress = 0;
  Executor ex(load_graph("r.toml", text, {}, registry()), registry(), o);
  ex.run();
  const auto ms = lines(dir / "run" / "metrics.jsonl");
  ASSERT_EQ(ms.size(), 60u);
  const Json first = json_parse(ms.front()), last = json_parse(ms.back());
  for (const char* k : {"step", "stage", "loss", "lr", "tokens_per_s", "elapsed_s", "loss"}) EXPECT_TRUE(first.contains(k)) << k;
  EXPECT_EQ(json_string(first.at("stage")), "fit");
  EXPECT_NEAR(json_number(first.at("loss")), 2.0 * json_number(first.at("mse")), 1e-6 * json_number(first.at("loss")));  // the weight
  EXPECT_LT(json_number(last.at("loss")), 0.1 * json_number(first.at("loss")));  // it fits
  EXPECT_NEAR(json_number(first.at("lr")), 0.2 / 5, 1e-12);  // warmup step 1 of 5
  EXPECT_TRUE(fs::exists(dir / "run" / "graph.toml"));
  EXPECT_TRUE(fs::exists(dir / "run" / "model.safetensors"));
  EXPECT_TRUE(fs::exists(dir / "run" / "checkpoints" / "latest.json"));
  EXPECT_TRUE(fs::exists(dir / "run" / "checkpoints" / "step_60" / "optimizer.safetensors"));
  EXPECT_FALSE(fs::exists(dir / "run" / "checkpoints" / "step_20"));  // only the two newest are kept
  auto w = safetensors::load((dir / "run" / "model.safetensors").string());
  EXPECT_EQ(w.tensors.size(), 2u);
  EXPECT_EQ(w.metadata.at(checkpoint::kPluginKey), "test.linear");
  fs::remove_all(dir);
}

TEST(Checkpoint, AFreshRunInAUsedDirectoryAndRetention) {
  const fs::path dir = temp("reuse");
  const std::string text = R"(
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
steps = 60
train = ["model"]
losses = ["mse"]
checkpoint = { every = 10 }
)";
  const fs::path run = dir / "run", ck = run / "checkpoints";
  auto go = [&](int64_t steps, bool resume) {
    RunOptions o;
    o.out_dir = run.string();
    o.progress = 0;
    o.resume = resume;
    Executor ex(load_graph("u.toml", text, {"stages.0.steps=" + std::to_string(steps)}, registry()), registry(), o);
    ex.run();
  };
  auto latest = [&] {
    std::ifstream in(ck / "latest.json");
    std::string t((std::istreambuf_iterator<char>(in)), {});
    return json_string(json_parse(t).at("checkpoint"));
  };
  auto listing = [&] {
    std::set<std::string> out;
    for (const auto& d : fs::directory_iterator(ck))
      if (d.is_directory()) out.insert(d.path().filename().string());
    return out;
  };
  go(60, false);
  EXPECT_EQ(listing(), (std::set<std::string>{"step_50", "step_60"}));
  // A shorter fresh run in the same directory: the earlier run's step_50/60 must neither
  // survive nor outrank this run's checkpoints (which retention by number would delete).
  go(30, false);
  EXPECT_EQ(latest(), "step_30");
  EXPECT_EQ(listing(), (std::set<std::string>{"step_20", "step_30"}));
  EXPECT_TRUE(fs::exists(ck / latest() / "state.json"));
  // Leftovers of a killed run: step_30 renamed but the kill came before latest.json named it,
  // a write never finished (step_25.tmp), and a stray later-numbered checkpoint. Resuming
  // continues from step_20, rewrites step_30, keeps step_20 beside it and clears the rest.
  files::write_atomic((ck / "latest.json").string(), "{\"checkpoint\": \"step_20\", \"step\": 20}\n");
  fs::create_directories(ck / "step_25.tmp");
  fs::create_directories(ck / "step_999");
  testing::internal::CaptureStderr();
  go(30, true);
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "") << "the same graph was resumed";
  EXPECT_EQ(latest(), "step_30");
  EXPECT_EQ(listing(), (std::set<std::string>{"step_20", "step_30"}));
  EXPECT_EQ(lines(run / "metrics.jsonl").size(), 30u);
  // Resuming with a changed graph works but warns that the curve is not the same one.
  files::write_atomic((ck / "latest.json").string(), "{\"checkpoint\": \"step_20\", \"step\": 20}\n");
  testing::internal::CaptureStderr();
  {
    RunOptions o;
    o.out_dir = run.string();
    o.progress = 0;
    o.resume = true;
    Executor ex(load_graph("u.toml", text, {"stages.0.steps=30", "nodes.data.batch=8"}, registry()), registry(), o);
    ex.run();
  }
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_NE(err.find("graph.toml differs from the graph being resumed"), std::string::npos) << err;
  fs::remove_all(dir);
}

TEST(Checkpoint, AKilledWriterNeverLeavesATornFile) {
  const fs::path dir = temp("atomic");
  const std::string path = (dir / "w.safetensors").string();
  safetensors::save(path, {{"w", Tensor::full({1 << 18}, 1.0)}});
  for (int round = 0; round < 6; ++round) {
    const pid_t pid = ::fork();
    if (pid == 0) {  // the child rewrites the file forever, with a new value each time
      for (int k = 2;; ++k) safetensors::save(path, {{"w", Tensor::full({1 << 18}, double(k))}});
    }
    ::usleep(20000 + 17000 * round);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    // Whatever moment the kill came, the file is a whole checkpoint with one value.
    auto loaded = safetensors::load(path);
    ASSERT_EQ(loaded.tensors.size(), 1u);
    auto v = loaded.tensors[0].second.to_vector();
    ASSERT_EQ(v.size(), size_t(1) << 18);
    for (size_t i = 1; i < v.size(); i += 4097) ASSERT_EQ(v[i], v[0]);
  }
  fs::remove_all(dir);
}
