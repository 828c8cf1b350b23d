// The out-of-tree example op (sdk/example/drop_layers.cpp, built against the SDK package by
// the sdk_example_plugin test) edits a GPT through scion/surgery.h: in-process on a model.gpt
// node made by the registry, and inside a real `scion run` with --plugin-dir.
#include <gtest/gtest.h>

#include <set>

#include "fixtures.h"
#include "runtime/registry.h"
#include "scion/surgery.h"
#include "scion_cli.h"

using namespace scion::runtime;

namespace {
const std::string kExample = SCION_EXAMPLE_PLUGINS;

struct None : NodeResolver {
  std::shared_ptr<Plugin> node(const std::string&) const override { return nullptr; }
};

const PluginRegistry& registry() {
  static PluginRegistry reg = [] {
    PluginRegistry r;
    r.scan({SCION_PLUGIN_DIR, kExample});
    return r;
  }();
  return reg;
}

// A model.gpt node of `layers` tiny blocks, every parameter at its schema default otherwise.
std::shared_ptr<Model> tiny_gpt(int64_t layers) {
  const LoadedPlugin* gpt = registry().find("model.gpt");
  EXPECT_NE(gpt, nullptr);
  Json p;
  for (const ParamSpec& s : gpt->entry.params)
    if (!s.default_value.is_null()) p[s.name] = s.default_value;
  p["vocab"] = Json(257);
  p["context"] = Json(16);
  p["layers"] = Json(layers);
  p["width"] = Json(16);
  p["heads"] = Json(2);
  p["frozen"] = Json(false);
  return std::dynamic_pointer_cast<Model>(registry().create("model.gpt", Params(p, "model", NodeContext{7, 0, 1, {}}), None()));
}

std::shared_ptr<Op> drop_op(const std::string& drop_json) {
  EXPECT_NE(registry().find("op.drop_layers"), nullptr) << "the example op was not built into " << kExample;
  Json p;
  p["drop"] = json_parse(drop_json);
  p["target"] = Json("model");
  return std::dynamic_pointer_cast<Op>(registry().create("op.drop_layers", Params(p, "op.drop_layers", NodeContext{3, 0, 1, {}}), None()));
}

std::map<std::string, Tensor> params_of(Model& m) {
  std::map<std::string, Tensor> out;
  for (const auto& [k, t] : m.module().named_parameters()) out[k] = t;
  return out;
}

std::string apply_error(const std::string& drop_json, int64_t layers) {
  auto m = tiny_gpt(layers);
  try {
    drop_op(drop_json)->apply(*m, StepContext{});
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

std::string graph(const std::string& ops) {
  return tiny_gpt_graph(
      {.model = {.layers = 4},
       .stages = "[[stages]]\nname = \"full\"\nsteps = 3\ntrain = [\"model\"]\nlosses = [\"lm\"]\n"
                 "[[stages]]\nname = \"shallow\"\nsteps = 2\ntrain = [\"model\"]\nlosses = [\"lm\"]\nops = [ " +
                 ops + " ]\n"});
}

Result run(const fs::path& d, const std::string& text) {
  std::ofstream(d / "g.toml") << text;
  return sh("run " + (d / "g.toml").string() + " --plain --out " + (d / "run").string() + " --plugin-dir " + kExample);
}

// Layers present in a checkpoint's model file: distinct N of "transformer.h.N." keys.
std::set<int64_t> layers_in(const fs::path& file) {
  std::set<int64_t> out;
  for (const auto& [k, t] : safetensors::load(file.string()).tensors)
    if (k.rfind("transformer.h.", 0) == 0) out.insert(std::stoll(k.substr(14)));
  return out;
}
}  // namespace

// Dropping layer 1 of 3: layers 0 and 2 remain, in order, with their weights; the op names
// the old layer each new one continues, so the optimizer state follows the kept layers.
TEST(ExampleOp, DropsALayerThroughTheSurgeryInterface) {
  auto m = tiny_gpt(3);
  ASSERT_TRUE(m);
  const auto before = params_of(*m);
  auto op = drop_op("[1]");
  op->apply(*m, StepContext{});
  auto& t = scion::surgery::transformer(*m, "test");
  EXPECT_EQ(t.architecture().layers(), 2);
  const auto after = params_of(*m);
  for (const auto& [k, v] : after) {
    std::string src = k;
    if (k.rfind("transformer.h.1.", 0) == 0) src = "transformer.h.2." + k.substr(16);
    ASSERT_TRUE(before.count(src)) << k;
    EXPECT_EQ(v.to_vector(), before.at(src).to_vector()) << k << " should hold " << src;
    EXPECT_EQ(op->state_source(k), src);
  }
  EXPECT_EQ(after.count("transformer.h.2.attn.c_attn.weight"), 0u);
  int64_t n_before = 0;
  for (const auto& [k, v] : before) n_before += v.numel();
  EXPECT_LT(m->module().parameter_count(), n_before);
}

TEST(ExampleOp, RefusesALayerTheModelDoesNotHave) {
  const std::string e = apply_error("[3]", 3);
  EXPECT_NE(e.find("op.drop_layers: layer 3 does not exist (the model has 3 layers, numbered 0 to 2)"), std::string::npos)
      << e;
  EXPECT_NE(apply_error("[-1]", 3).find("layer -1 does not exist"), std::string::npos);
}

TEST(ExampleOp, RefusesDroppingEveryLayer) {
  const std::string e = apply_error("[0, 2, 1]", 3);
  EXPECT_NE(e.find("op.drop_layers: drop names all 3 layers; a model keeps at least one"), std::string::npos) << e;
  EXPECT_NE(e.find("hint:"), std::string::npos) << e;
}

TEST(ExampleOp, RefusesALayerListedTwiceAndAMalformedList) {
  EXPECT_NE(apply_error("[1, 1]", 3).find("layer 1 is listed twice in drop"), std::string::npos);
  auto bad = [](const std::string& j) {
    try {
      drop_op(j);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(bad("[]").find("op.drop_layers: drop is empty"), std::string::npos);
  EXPECT_NE(bad("[\"1\"]").find("op.drop_layers: drop must be a list of layer indices, got \"1\""), std::string::npos)
      << bad("[\"1\"]");
  EXPECT_NE(bad("[1.5]").find("drop must be a list of layer indices"), std::string::npos);
  EXPECT_NE(bad("1").find("drop must be a list of layer indices"), std::string::npos);
}

// A model computing through structural gates would silently change function if rebuilt.
TEST(ExampleOp, RefusesAModelWithGatesSet) {
  auto m = tiny_gpt(3);
  auto& t = scion::surgery::transformer(*m, "test");
  t.set_gate(GateKind::head, 0, Tensor::full({2}, 0.5));
  std::string e;
  try {
    drop_op("[1]")->apply(*m, StepContext{});
  } catch (const std::exception& x) {
    e = x.what();
  }
  EXPECT_NE(e.find("op.drop_layers: the model has structural gates set (head.0)"), std::string::npos) << e;
  EXPECT_EQ(t.architecture().layers(), 3);  // refused before any edit
}

// In a real run: a 4-layer GPT trains 3 steps, then the second stage drops layers 0 and 2 and
// the 2-layer model trains on; its checkpoint holds two blocks and says so in its config.
TEST(ExampleOp, RunsInAGraphFromThePluginDir) {
  const fs::path d = temp("example_op");
  const Result r = run(d, graph(R"({ plugin = "op.drop_layers", target = "model", drop = [0, 2] })"));
  ASSERT_EQ(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("[shallow] op op.drop_layers applied to model"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[shallow] step 2/2"), std::string::npos) << r.out;
  const fs::path ck = d / "run" / "checkpoints";
  EXPECT_EQ(layers_in(ck / "step_3" / "model.safetensors"), (std::set<int64_t>{0, 1, 2, 3}));
  EXPECT_EQ(layers_in(ck / "step_5" / "model.safetensors"), (std::set<int64_t>{0, 1}));
  const auto meta = safetensors::load((ck / "step_5" / "model.safetensors").string()).metadata;
  const Json cfg = json_parse(meta.at("scion.config"));
  EXPECT_EQ(json_int(cfg.at("layers")), 2) << meta.at("scion.config");
  // The kept layers continue their optimizer state: 3 updates before the op, 2 after.
  const auto st = last_optimizer_state(d / "run");
  auto it = st.find("model.transformer.h.1.mlp.c_fc.weight.step");
  ASSERT_NE(it, st.end());
  EXPECT_EQ(it->second.to_vector_i64()[0], 5);
  fs::remove_all(d);
}

TEST(ExampleOp, ARunRefusesALayerTheModelDoesNotHave) {
  const fs::path d = temp("example_op_bad");
  const Result r = run(d, graph(R"({ plugin = "op.drop_layers", target = "model", drop = [4] })"));
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.out.find("op.drop_layers: layer 4 does not exist (the model has 4 layers"), std::string::npos) << r.out;
  fs::remove_all(d);
}
