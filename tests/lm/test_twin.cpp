// Scion's GPT-2, BERT and Llama against PyTorch twins (tests/lm/twin.py): the same weights
// and batch, three AdamW training steps; logits, losses, every gradient and the final weights
// must match. The Llama twin is float64 and written from Hugging Face's definitions. Debian's python3-torch is installed by scripts/install-deps.sh.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>

#include "bert_model.h"
#include "decoder_model.h"
#include "lm_nodes.h"
#include "scion/json.h"
#include "scion/safetensors.h"

using namespace scion;
namespace fs = std::filesystem;

namespace {

struct TwinRun {
  fs::path dir;
  TwinRun(const std::string& tag) {
    dir = fs::temp_directory_path() / ("scion_twin_" + tag + "_" + std::to_string(::getpid()));
    fs::create_directories(dir);
  }
  ~TwinRun() { fs::remove_all(dir); }
};

// Trains `steps` AdamW steps, writing what the twin needs; returns the twin's exit output.
template <class Model, class Forward>
std::pair<int, std::string> run_twin(const std::string& kind, Model& model, Json cfg, const safetensors::Named& batch,
                                     const Tensor& targets, Forward forward) {
  TwinRun run(kind);
  const float lr = 1e-2f, wd = 0.01f;
  const int steps = 3;
  cfg["lr"] = Json(double(lr));
  cfg["wd"] = Json(double(wd));
  cfg["steps"] = Json(steps);
  safetensors::save((run.dir / "init.safetensors").string(), model.state_dict(), {{"config", json_dump(cfg)}});
  safetensors::save((run.dir / "batch.safetensors").string(), batch);
  auto params = model.parameters();
  auto names = model.named_parameters();
  std::vector<Tensor> m, v;
  for (auto& p : params) m.push_back(Tensor::zeros(p.shape())), v.push_back(Tensor::zeros(p.shape()));
  std::vector<float> losses;
  safetensors::Named out;
  for (int s = 0; s < steps; ++s) {
    model.zero_grad();
    Tensor logits = forward();
    Tensor loss = ops::cross_entropy(logits, targets);
    loss.backward();
    losses.push_back(loss.item());
    if (s == 0) {
      out.emplace_back("logits", logits.detach());
      for (auto& [n, p] : names) out.emplace_back("grad." + n, p.grad());
    }
    ops::AdamWConfig oc;
    oc.lr = lr;
    oc.weight_decay = wd;
    for (size_t i = 0; i < params.size(); ++i) ops::adamw_step(params[i], params[i].grad(), m[i], v[i], s + 1, oc);
  }
  out.emplace_back("losses", Tensor::from_vector(losses, {int64_t(losses.size())}));
  for (auto& [n, p] : model.named_parameters()) out.emplace_back("final." + n, p);
  safetensors::save((run.dir / "scion.safetensors").string(), out);
  const std::string cmd = "/usr/bin/python3 " SCION_SOURCE_DIR "/tests/lm/twin.py " + kind + " " + run.dir.string() + " 2>&1";
  FILE* pipe = ::popen(cmd.c_str(), "r");
  std::string text;
  char buf[512];
  while (pipe && std::fgets(buf, sizeof buf, pipe)) text += buf;
  const int rc = pipe ? ::pclose(pipe) : -1;
  return {rc, text};
}

}  // namespace

TEST(Twin, GptMatchesPyTorch) {
  lm::DecoderConfig c;
  c.vocab = 61;
  c.context = 16;
  c.layers = 2;
  c.width = 32;
  c.heads = 4;
  c.seed = 21;
  lm::DecoderModel model(c);
  Tensor ids = Tensor::randint({2, 13}, 1, 0, c.vocab), targets = Tensor::randint({2, 13}, 2, 0, c.vocab);
  Json cfg;
  cfg["layers"] = Json(c.layers);
  cfg["heads"] = Json(c.heads);
  auto [rc, out] = run_twin("gpt", model, cfg, {{"ids", ids}, {"targets", targets}}, targets,
                            [&] { return model.forward(ids); });
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("0 mismatches"), std::string::npos) << out;
}

TEST(Twin, BertMatchesPyTorch) {
  lm::BertConfig c;
  c.vocab = 53;
  c.context = 16;
  c.layers = 2;
  c.width = 32;
  c.heads = 4;
  c.seed = 8;
  lm::BertModel model(c);
  const int64_t B = 2, T = 11;
  Tensor ids = Tensor::randint({B, T}, 3, 0, c.vocab);
  Tensor types = Tensor::randint({B, T}, 4, 0, 2);
  std::vector<float> maskv(size_t(B * T), 1.f);
  for (int t = 8; t < T; ++t) maskv[size_t(T + t)] = 0.f;  // the second sequence is padded
  Tensor mask = Tensor::from_vector(maskv, {B, T}).to(DType::u8);
  // MLM-style targets: only some positions count.
  std::vector<int64_t> tv = Tensor::randint({B, T}, 5, 0, c.vocab).to_vector_i64();
  for (size_t i = 0; i < tv.size(); ++i)
    if (i % 3 != 0 || maskv[i] == 0.f) tv[i] = -100;
  Tensor targets = Tensor::from_vector_i64(tv, {B, T});
  Json cfg;
  cfg["layers"] = Json(c.layers);
  cfg["heads"] = Json(c.heads);
  auto [rc, out] = run_twin("bert", model, cfg,
                            {{"ids", ids}, {"targets", targets}, {"types", types}, {"mask", mask}}, targets,
                            [&] { return model.forward(ids, types, mask); });
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("0 mismatches"), std::string::npos) << out;
}

namespace {
// A Llama of the given shape with every parameter moved off its initial value (biases and
// norm weights start at 0 and 1, which would hide a wrong bias or norm path).
void scramble(nn::Module& m, uint64_t seed) {
  NoGradGuard ng;
  uint64_t k = seed;
  for (auto& [name, p] : m.named_parameters()) {
    const bool norm = name.find("norm") != std::string::npos;
    Tensor noise = Tensor::randn(p.shape(), ++k, 0.f, name.find("bias") != std::string::npos || norm ? 0.1f : 0.f);
    Tensor moved = ops::add(p, noise);
    m.replace_parameter(name, moved.detach());
  }
}

std::pair<int, std::string> llama_twin(const lm::DecoderConfig& c) {
  lm::DecoderModel model(c);
  scramble(model, c.seed);
  Tensor ids = Tensor::randint({2, 13}, c.seed + 1, 0, c.vocab), targets = Tensor::randint({2, 13}, c.seed + 2, 0, c.vocab);
  // Scion's own config JSON (what a checkpoint carries) tells the twin the shapes and rope.
  Json cfg = lm::config_to_json(c);
  cfg["kv_heads"] = Json(c.kv_heads_at(0));
  return run_twin("llama", model, cfg, {{"ids", ids}, {"targets", targets}}, targets, [&] { return model.forward(ids); });
}
}  // namespace

// Grouped-query attention (4 query heads on 2 key/value heads), an untied head, Qwen2's
// biases (q, k, v only) and Llama 3's rope_scaling with every band of it in use: with head
// size 8 the wavelengths are 6.3, 63, 628 and 6283 positions against a window of 16..64.
TEST(Twin, LlamaWithGroupedHeadsQwenBiasesAndLlama3RopeMatchesPyTorch) {
  lm::DecoderConfig c = lm::DecoderConfig::of_family("llama");
  c.vocab = 67, c.context = 32, c.layers = 2, c.width = 32, c.heads = 4, c.kv_heads = 2, c.ffn = 48;
  c.qkv_bias = true, c.o_bias = false;
  c.norm_eps = 1e-5;
  c.rope_scaling = ops::Llama3RopeScaling{8.0, 1.0, 4.0, 64};
  c.seed = 31;
  auto [rc, out] = llama_twin(c);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("0 mismatches"), std::string::npos) << out;
}

// Multi-query attention (one key/value head), a tied head, Llama's attention_bias and
// mlp_bias (every projection biased) and Llama 3's rope_theta.
TEST(Twin, LlamaWithOneKeyValueHeadTiedHeadAndAllBiasesMatchesPyTorch) {
  lm::DecoderConfig c = lm::DecoderConfig::of_family("llama");
  c.vocab = 59, c.context = 32, c.layers = 2, c.width = 24, c.heads = 3, c.kv_heads = 1, c.ffn = 40;
  c.tied = true;
  c.qkv_bias = c.o_bias = c.mlp_bias = true;
  c.rope_theta = 500000.0;
  c.seed = 44;
  auto [rc, out] = llama_twin(c);
  EXPECT_EQ(rc, 0) << out;
  EXPECT_NE(out.find("0 mismatches"), std::string::npos) << out;
}
