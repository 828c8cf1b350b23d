// Hugging Face Llama directories in and out, end to end: a random Llama written as a sharded
// bf16 directory loads into model.llama (load = <dir>) and computes what it computed;
// `scion export` writes it back as a directory from_pretrained reads, which loads again with
// the same logits. Files that disagree with their config are refused naming the tensor.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "hf_config.h"
#include "lm_nodes.h"
#include "scion/checkpoint.h"
#include "scion/hf_directory.h"
#include "scion/safetensors.h"
#include "scion_cli.h"
#include "tiny_models.h"

using namespace scion;
namespace fs = std::filesystem;

namespace {

fs::path fresh_dir(const std::string& tag) {
  const fs::path d = fs::temp_directory_path() / ("scion_hf_" + tag + "_" + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

// A model.llama node made as a graph makes it, loading `path`.
std::unique_ptr<lm::DecoderNode> load_node(const fs::path& path) {
  Json p;
  for (const char* k : {"vocab", "context", "layers", "heads", "ffn"}) p[k] = Json(int64_t(1));
  p["width"] = Json(int64_t(4));
  p["dropout"] = Json(0.0);
  p["tied"] = Json(false);
  p["load"] = Json(path.string());
  p["frozen"] = Json(true);
  return std::make_unique<lm::DecoderNode>(Params(p, "loaded", NodeContext{1, 0, 1, {}}), "llama");
}

Tensor logits(lm::DecoderModel& m, const Tensor& ids) {
  NoGradGuard g;
  return m.forward(ids);
}

double rel_err(const Tensor& a, const Tensor& b) {
  auto x = a.to_vector(), y = b.to_vector();
  double d = 0, s = 0;
  for (size_t i = 0; i < x.size(); ++i) d = std::max(d, std::fabs(double(x[i]) - y[i])), s = std::max(s, std::fabs(double(y[i])));
  return d / s;
}

// Llama 3's shape (grouped heads, rope_scaling, untied head, no biases) and Qwen2's (q/k/v
// biases, tied head).
std::vector<lm::DecoderConfig> families() {
  lm::DecoderConfig llama3 = tiny::llama_cfg();
  llama3.qkv_bias = false;
  llama3.rope_scaling = ops::Llama3RopeScaling{8.0, 1.0, 4.0, 8};
  llama3.rope_theta = 500000.0;
  llama3.norm_eps = 1e-5;
  lm::DecoderConfig qwen2 = tiny::llama_cfg();
  qwen2.qkv_bias = true;
  qwen2.o_bias = false;
  qwen2.tied = true;
  qwen2.hf_architecture = "Qwen2ForCausalLM";  // Llama's attention_bias would bias o_proj too
  return {llama3, qwen2};
}

}  // namespace

TEST(HuggingFace, ShardedBf16LlamaLoadsExportsAndReloadsWithTheSameLogits) {
  for (const lm::DecoderConfig& c : families()) {
    SCOPED_TRACE(c.tied ? "qwen2-like" : "llama3-like");
    const fs::path d = fresh_dir("roundtrip");
    lm::DecoderModel original(c);
    tiny::scramble(original, 7);
    const Tensor ids = Tensor::randint({2, 10}, 5, 0, c.vocab);

    // In: a sharded bf16 directory, as a Hub checkpoint is stored.
    hf::WriteOptions bf16;
    bf16.dtype = DType::bf16;
    bf16.max_shard_bytes = 4000;
    nn::NamedTensors weights = original.named_parameters();
    hf::write((d / "in").string(), lm::hf_config_for("model.llama", lm::config_to_json(c)), weights, bf16);
    ASSERT_TRUE(fs::exists(d / "in" / hf::kIndexFile));
    ASSERT_TRUE(fs::exists(d / "in" / "model-00002-of-00003.safetensors") ||
                fs::exists(d / "in" / "model-00002-of-00004.safetensors") ||
                fs::exists(d / "in" / "model-00002-of-00005.safetensors"));
    auto a = load_node(d / "in");
    EXPECT_EQ(a->architecture().kv_heads_at(0), c.kv_heads_at(0));
    EXPECT_EQ(a->impl().config().tied, c.tied);
    EXPECT_EQ(a->impl().config().qkv_bias, c.qkv_bias);
    EXPECT_EQ(bool(a->impl().config().rope_scaling), bool(c.rope_scaling));
    const Tensor la = logits(a->impl(), ids);
    EXPECT_LT(rel_err(la, logits(original, ids)), 3e-2) << "bf16 weights of the f32 model";

    // A Scion checkpoint of the loaded model, exported by the command.
    const std::string ckpt = (d / "loaded.safetensors").string();
    safetensors::save(ckpt, a->module().state_dict(),
                      {{checkpoint::kPluginKey, "model.llama"}, {checkpoint::kConfigKey, json_dump(a->config())}});
    { std::ofstream(d / "tokenizer.json") << "{\"model\": {}}"; }
    const Result r = sh("export --checkpoint " + ckpt + " --out " + (d / "out").string() + " --tokenizer " +
                        (d / "tokenizer.json").string());
    ASSERT_EQ(r.rc, 0) << r.out;
    EXPECT_TRUE(fs::exists(d / "out" / "tokenizer.json"));
    const Json config = hf::read_config((d / "out").string());
    EXPECT_EQ(config.at("num_key_value_heads").get<int64_t>(), c.kv_heads_at(0));
    EXPECT_EQ(config.at("tie_word_embeddings").get<bool>(), c.tied);
    if (c.rope_scaling) EXPECT_EQ(config.at("rope_scaling").at("rope_type").get<std::string>(), "llama3");
    const safetensors::Named out = hf::read((d / "out").string()).tensors;
    bool has_head = false;
    for (const auto& [name, t] : out) has_head = has_head || name == "lm_head.weight";
    EXPECT_EQ(has_head, !c.tied) << "a tied head is the embedding, not written twice";

    auto b = load_node(d / "out");
    EXPECT_EQ(rel_err(logits(b->impl(), ids), la), 0.0) << "f32 export of the loaded weights";
    fs::remove_all(d);
  }
}

TEST(HuggingFace, ADirectoryWhoseTensorsDisagreeWithItsConfigIsRefusedNamingTheTensor) {
  const fs::path d = fresh_dir("mismatch");
  lm::DecoderConfig c = tiny::llama_cfg();
  c.qkv_bias = false;
  lm::DecoderModel m(c);
  Json config = lm::hf_config_for("model.llama", lm::config_to_json(c));
  config["intermediate_size"] = Json(int64_t(32));  // the tensors have 24 units
  hf::write((d / "dir").string(), config, m.named_parameters());
  try {
    load_node(d / "dir");
    FAIL() << "loaded";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("mlp.gate_proj.weight"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[24, 16]"), std::string::npos) << msg;
    EXPECT_NE(msg.find("[32, 16]"), std::string::npos) << msg;
  }
  // A Llama directory into a GPT node is refused by name.
  Json p;
  for (const char* k : {"vocab", "context", "layers", "heads", "ffn"}) p[k] = Json(int64_t(1));
  p["width"] = Json(int64_t(4));
  p["dropout"] = Json(0.0);
  p["tied"] = Json(true);
  p["load"] = Json((d / "dir").string());
  p["frozen"] = Json(true);
  try {
    lm::DecoderNode gpt(Params(p, "g", NodeContext{1, 0, 1, {}}), "gpt2");
    FAIL() << "loaded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("holds a model.llama model"), std::string::npos) << e.what();
  }
  fs::remove_all(d);
}

// `scion generate --checkpoint <dir>` takes the directory's tokenizer.json (tokenizer.hf) when
// no tokenizer is named, and says so when it does not fit the model.
TEST(HuggingFace, GenerateUsesTheDirectorysTokenizer) {
  const fs::path mistral = fs::path(SCION_SOURCE_DIR) / "data/hf/mistral/tokenizer.json";
  if (!fs::exists(mistral)) GTEST_SKIP() << "data/hf/mistral/tokenizer.json not fetched (scripts/fetch-hf-tokenizers.sh)";
  const fs::path d = fresh_dir("generate");
  lm::DecoderConfig c = tiny::llama_cfg();
  c.qkv_bias = false;
  lm::DecoderModel m(c);  // 37 ids: Mistral's 32000 do not fit
  hf::WriteOptions o;
  o.extra_files = {mistral.string()};
  hf::write((d / "dir").string(), lm::hf_config_for("model.llama", lm::config_to_json(c)), m.named_parameters(), o);
  const Result r = sh("generate --checkpoint " + (d / "dir").string() + " --prompt hello --max-tokens 2");
  EXPECT_NE(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("tokenizer tokenizer.hf has 32000 ids"), std::string::npos) << r.out;
  fs::remove_all(d);
}
