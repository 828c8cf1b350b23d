// Resume: a real `scion run` killed with SIGKILL mid-run and resumed gives the same metrics
// as an uninterrupted run, bit for bit (same thread count).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <thread>

#include "fixtures.h"
#include "scion_cli.h"

namespace {
const std::string kGraph =
    tiny_gpt_graph({.head = "\n[run]\nname = \"resume\"\nseed = 5\nthreads = 2\n\n",
                    .corpus = {.files = "@DATA@/data/corpus/literature/train.txt", .seq_len = 32, .batch_size = 4},
                    .model = {.context = 32, .layers = 2, .width = 32, .heads = 4, .keys = "dropout = 0.1\n"},
                    .stages = R"([[stages]]
name = "first"
steps = 20
train = ["model"]
losses = ["lm"]
optimizer = { lr = 3e-3, warmup = 5 }
checkpoint = { every = 4 }

[[stages]]
name = "grown"
steps = 20
train = ["model"]
losses = ["lm"]
optimizer = { lr = 1e-3 }
checkpoint = { every = 4 }
ops = [ { plugin = "grow.net2wider", target = "model", width = 64 } ]
)"});

// MSG growth whose masks ramp across a checkpoint, the kill and a stage boundary.
const std::string kMaskedStages = R"(
[[stages]]
name = "grown"
steps = 20
train = ["model"]
losses = ["lm"]
optimizer = { lr = 1e-3 }
checkpoint = { every = 4 }
ops = [ { plugin = "grow.masked", target = "model", width = 64, ffn = 160, layers = 3, ramp_steps = 24 } ]

[[stages]]
name = "after"
steps = 8
train = ["model"]
losses = ["lm"]
optimizer = { lr = 5e-4 }
checkpoint = { every = 4 }
)";

// Knowledge inheritance across a checkpoint, a kill and a stage boundary: α's linear decay
// (30 updates) continues through both, and the teacher stops running at 0.
const std::string kInheritStages = "\n" +
                                   gpt_table({.name = "teacher", .context = 32, .width = 32, .heads = 4, .keys = "frozen = true\n"}) +
                                   R"(
[nodes.inherit]
plugin = "loss.inherit"
student = "model.logits"
teacher = "teacher.logits"
targets = "corpus.targets"
schedule = "linear"
steps = 30

[[stages]]
name = "first"
steps = 20
train = ["model"]
losses = ["inherit"]
optimizer = { lr = 3e-3, warmup = 5 }
checkpoint = { every = 4 }

[[stages]]
name = "second"
steps = 20
train = ["model"]
losses = ["inherit"]
optimizer = { lr = 1e-3 }
checkpoint = { every = 4 }
)";


// Runs `text` uninterrupted into dir/full, then again into dir/part killed (SIGKILL) once
// checkpoint step_<kill_after> exists, resumes it, and compares every logged loss bit for bit.
// `plugin_dir`: an extra folder of plugin libraries (the testing plugins).
void expect_resume_on_the_same_curve(const fs::path& dir, std::string text, int kill_after, size_t lines,
                                     const std::string& plugin_dir = "") {
  fs::remove_all(dir);
  fs::create_directories(dir);
  text = with_data(text);
  std::ofstream(dir / "g.toml") << text;
  const std::string g = (dir / "g.toml").string() + (plugin_dir.empty() ? "" : " --plugin-dir " + plugin_dir);

  ASSERT_EQ(run_scion(g + " --out " + (dir / "full").string()), 0);
  const auto want = metrics(dir / "full");
  ASSERT_EQ(want.size(), lines);

  const fs::path part = dir / "part";
  const pid_t pid = ::fork();
  if (pid == 0) {
    const std::string file = (dir / "g.toml").string();
    if (plugin_dir.empty())
      ::execl(SCION_EXE, SCION_EXE, "run", file.c_str(), "--out", part.c_str(), "--plain", (char*)nullptr);
    else
      ::execl(SCION_EXE, SCION_EXE, "run", file.c_str(), "--out", part.c_str(), "--plain", "--plugin-dir",
              plugin_dir.c_str(), (char*)nullptr);
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  const fs::path mark = part / "checkpoints" / ("step_" + std::to_string(kill_after));
  while (!fs::exists(mark) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the run finished before it could be killed";
  ASSERT_EQ(run_scion(g + " --out " + part.string() + " --resume"), 0);
  const auto got = metrics(part);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(json_int(got[i].at("step")), json_int(want[i].at("step")));
    EXPECT_EQ(json_number(got[i].at("loss")), json_number(want[i].at("loss"))) << "step " << i + 1;
    EXPECT_EQ(json_number(got[i].at("lr")), json_number(want[i].at("lr")));
  }
}

}  // namespace

TEST(Resume, KilledRunResumesOnTheSameCurve) {
  // Killed in the first stage, before the growth op.
  const fs::path dir = fs::temp_directory_path() / ("scion_resume_" + std::to_string(::getpid()));
  expect_resume_on_the_same_curve(dir, kGraph, 12, 40);
  fs::remove_all(dir);
}

// precision = "bf16": the bf16 GEMMs are deterministic too, so a killed bf16 run resumes on its
// own curve bit for bit.
TEST(Resume, ABf16RunResumesOnTheSameCurve) {
  std::string text = kGraph;
  const std::string at = "threads = 2\n";
  text.replace(text.find(at), at.size(), at + "precision = \"bf16\"\n");
  const fs::path dir = temp("resume_bf16");
  expect_resume_on_the_same_curve(dir, text, 12, 40);
  fs::remove_all(dir);
}

// 40 updates of the same graph in f32 and in bf16 follow the same curve to within a few
// percent (bf16 keeps 8 bits of mantissa in the GEMM inputs only), and bf16 did run (the
// curves are not identical).
TEST(Resume, Bf16FollowsTheF32CurveWithinItsTolerance) {
  const fs::path dir = temp("bf16_curve");
  const std::string text = with_data(kGraph);
  std::ofstream(dir / "g.toml") << text;
  const std::string g = (dir / "g.toml").string();
  ASSERT_EQ(run_scion(g + " --out " + (dir / "f32").string()), 0);
  ASSERT_EQ(run_scion(g + " --out " + (dir / "bf16").string() + " --set run.precision=bf16"), 0);
  const auto a = metrics(dir / "f32"), b = metrics(dir / "bf16");
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  bool differ = false;
  for (size_t i = 0; i < a.size(); ++i) {
    const double x = json_number(a[i].at("loss")), y = json_number(b[i].at("loss"));
    worst = std::max(worst, std::abs(x - y) / x);
    differ = differ || x != y;
  }
  EXPECT_LT(worst, 0.03) << "bf16 left the f32 curve by more than 3%";
  EXPECT_TRUE(differ) << "the bf16 run gave f32's losses bit for bit: bf16 did not run";
  fs::remove_all(dir);
}

// Where oneDNN has no bf16 GEMM (an AVX2 CPU; forced here by SCION_CPU_BF16=emulate) a bf16
// run still trains, emulating the bf16 GEMMs in f32, and says so once; a bad value of the
// variable is refused by name.
TEST(Resume, Bf16WithoutBf16HardwareSaysItIsEmulated) {
  const fs::path dir = temp("bf16_emulated");
  const std::string text = with_data(kGraph);
  std::ofstream(dir / "g.toml") << text;
  auto run = [&](const std::string& env, const std::string& out) {
    return sh("run " + (dir / "g.toml").string() + " --out " + (dir / out).string() +
                  " --plain --set run.precision=bf16 --set stages.0.steps=3 --set stages.1.steps=2",
              env);
  };
  const auto [rc, out] = run("SCION_CPU_BF16=emulate", "emulated");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("the bf16 GEMMs are emulated in f32"), std::string::npos) << out;
  EXPECT_EQ(metrics(dir / "emulated").size(), 5u);
  // Bad values of either variable are refused before the run writes anything.
  const auto [bad_rc, bad_out] = run("SCION_CPU_BF16=fast", "bad");
  EXPECT_NE(bad_rc, 0);
  EXPECT_NE(bad_out.find("SCION_CPU_BF16='fast': expected \"native\" or \"emulate\""), std::string::npos) << bad_out;
  const auto [bad_gemm_rc, bad_gemm_out] = run("SCION_CPU_GEMM=mkl", "bad");
  EXPECT_NE(bad_gemm_rc, 0);
  EXPECT_NE(bad_gemm_out.find("SCION_CPU_GEMM='mkl': expected \"onednn\" or \"openblas\""), std::string::npos)
      << bad_gemm_out;
  EXPECT_FALSE(fs::exists(dir / "bad"));
  fs::remove_all(dir);
}

TEST(Resume, StageFilesResumeEachStreamWhereItWas) {
  // The second stage reads another domain (data.text's stage_files); killed there, the run
  // resumes both streams' positions.
  std::string text = kGraph;
  const std::string files = "files = [\"@DATA@/data/corpus/literature/train.txt\"]\n";
  text.replace(text.find(files), files.size(), files + "stage_files = { grown = [\"@DATA@/data/corpus/cs/train.txt\"] }\n");
  const fs::path dir = fs::temp_directory_path() / ("scion_resume_sf_" + std::to_string(::getpid()));
  expect_resume_on_the_same_curve(dir, text, 28, 40);
  fs::remove_all(dir);
}

TEST(Resume, InheritanceResumesMidDecayAcrossAStageBoundary) {
  std::string text = kGraph;
  text = text.substr(0, text.find("[[stages]]")) + kInheritStages;
  const fs::path dir = fs::temp_directory_path() / ("scion_resume_ki_" + std::to_string(::getpid()));
  expect_resume_on_the_same_curve(dir, text, 24, 40);  // killed in the second stage, α ≈ 0.2
  const auto m = metrics(dir / "part");
  ASSERT_EQ(m.size(), 40u);
  EXPECT_NEAR(json_number(m[25].at("inherit/alpha")), 1.0 - 25.0 / 30.0, 1e-8);
  EXPECT_EQ(json_number(m[35].at("inherit/alpha")), 0.0);
  EXPECT_FALSE(m[35].contains("inherit/kl"));
  fs::remove_all(dir);
}

TEST(Resume, MaskedGrowthRampsAcrossStagesAndResumesMidRamp) {
  std::string text = kGraph;
  text = text.substr(0, text.find("[[stages]]\nname = \"grown\"")) + kMaskedStages;
  const fs::path dir = fs::temp_directory_path() / ("scion_resume_msg_" + std::to_string(::getpid()));
  expect_resume_on_the_same_curve(dir, text, 32, 48);  // killed mid-ramp (the ramp ends at step 44)
  // The optimizer carried over: the old parameters' moments continued through the growth
  // (their step count counts every update of the run), the new layer's started at growth.
  auto st = last_optimizer_state(dir / "full");
  ASSERT_TRUE(st.count("model.transformer.wte.weight.step"));
  EXPECT_EQ(st.at("model.transformer.wte.weight.step").to_vector_i64()[0], 48);
  EXPECT_EQ(st.at("model.transformer.wte.weight.exp_avg").shape(), (Shape{257, 64}));
  EXPECT_EQ(st.at("model.transformer.h.2.attn.c_attn.weight.step").to_vector_i64()[0], 28);
  fs::remove_all(dir);
}

TEST(Resume, KeepsANonFiniteMetricLineAndExactCounters) {
  // A metrics line with NaN (a diverged step, written as Python's json writes it) is a metric,
  // not a torn line: resume keeps it (it dropped it when the reader refused NaN). And state.json's counters carry all their digits.
  std::string text = kGraph;
  text = text.substr(0, text.find("[[stages]]\nname = \"grown\""));
  text.replace(text.find("steps = 20"), 10, "steps = 8");
  text = with_data(text);
  const fs::path dir = fs::temp_directory_path() / ("scion_resume_nan_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::ofstream(dir / "g.toml") << text;
  const fs::path run = dir / "run";
  ASSERT_EQ(run_scion((dir / "g.toml").string() + " --out " + run.string()), 0);
  auto m = metrics(run);
  ASSERT_EQ(m.size(), 8u);
  {
    std::ifstream in(run / "checkpoints" / "step_8" / "state.json");
    const Json state = json_parse(std::string((std::istreambuf_iterator<char>(in)), {}));
    EXPECT_EQ(json_number(state.at("flops")), json_number(m[7].at("flops")));
    EXPECT_EQ(json_number(state.at("tokens")), json_number(m[7].at("tokens")));
  }
  m[2]["loss"] = std::nan("");
  {
    std::ofstream out(run / "metrics.jsonl");
    for (const Json& l : m) out << json_dump(l) << "\n";
  }
  // Resume from step 4 (as if killed before step 8's checkpoint): lines 1-4 are kept, 5-8 rerun.
  fs::remove_all(run / "checkpoints" / "step_8");
  ASSERT_TRUE(fs::exists(run / "checkpoints" / "step_4"));
  std::ofstream(run / "checkpoints" / "latest.json") << "{\"checkpoint\":\"step_4\",\"step\":4}\n";
  ASSERT_EQ(run_scion((dir / "g.toml").string() + " --out " + run.string() + " --resume"), 0);
  const auto after = metrics(run);
  ASSERT_EQ(after.size(), 8u);
  EXPECT_TRUE(std::isnan(json_number(after[2].at("loss"))));
  for (size_t i = 0; i < after.size(); ++i) EXPECT_EQ(json_int(after[i].at("step")), int64_t(i + 1));
  fs::remove_all(dir);
}

// A multiplier owned by a loss node (not a model), trained by SGD ascent in a parameter group
// of its own while AdamW trains the model: killed mid-run and resumed, the curve and the final
// multiplier are bit-identical to an uninterrupted run's.
TEST(Resume, AMultiplierOwnedByALossResumesBitIdentically) {
  const std::string text = R"(
[run]
seed = 9
threads = 1
[nodes.data]
plugin = "test.synthetic"
batch = 16
sleep_ms = 15
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
steps = 40
train = ["model", "lag"]
losses = ["lag"]
optimizer = { lr = 0.05, warmup = 4 }
checkpoint = { every = 4 }
param_groups = [ { nodes = ["lag"], plugin = "optim.sgd", momentum = 0.9, lr = 0.5, sign = -1 } ]
)";
  const fs::path dir = fs::temp_directory_path() / ("scion_resume_lag_" + std::to_string(::getpid()));
  expect_resume_on_the_same_curve(dir, text, 16, 40, std::string(SCION_TEST_PLUGINS) + "/good");
  const auto full = metrics(dir / "full"), part = metrics(dir / "part");
  for (size_t i = 0; i < full.size(); ++i)
    EXPECT_EQ(json_number(part[i].at("lag/lambda")), json_number(full[i].at("lag/lambda"))) << "update " << i + 1;
  EXPECT_NE(json_number(full.back().at("lag/lambda")), 0.0);
  const auto a = safetensors::load((dir / "full" / "lag.safetensors").string()).tensors;
  const auto b = safetensors::load((dir / "part" / "lag.safetensors").string()).tensors;
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(a[0].second.to_vector(), b[0].second.to_vector());
  // The multiplier's momentum went through the checkpoint too.
  EXPECT_TRUE(last_optimizer_state(dir / "part").count("lag.lambda.momentum_buffer"));
  fs::remove_all(dir);
}
