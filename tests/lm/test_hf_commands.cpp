// Hugging Face directories through the `scion` command: `scion validate` reads a directory's
// config.json for `load = <dir>` (its vocabulary, context and architecture checked, the
// weights not read), and `scion export` refuses what it must not write before reading a model.
#include <gtest/gtest.h>

#include <cstring>

#include "scion/hf_directory.h"
#include "scion_cli.h"

namespace {

void write_config(const fs::path& dir, const std::string& json) {
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << json;
}

std::string llama_config(int context) {
  return R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 50257, "hidden_size": 64,
             "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
             "max_position_embeddings": )" +
         std::to_string(context) + R"(, "rms_norm_eps": 1e-5})";
}

}  // namespace

TEST(HfCommands, ValidateChecksAHuggingFaceDirectorysConfig) {
  const fs::path d = temp("hf_validate");
  write_config(d / "ok", llama_config(128));
  write_config(d / "short", llama_config(64));
  write_config(d / "falcon", R"({"architectures": ["FalconForCausalLM"], "model_type": "falcon"})");
  // No weights are needed to validate: only config.json is read.
  Result r = sh("validate graphs/llama_pretrain.toml --set nodes.student.load=" + (d / "ok").string());
  EXPECT_EQ(r.rc, 0) << r.out;
  r = sh("validate graphs/llama_pretrain.toml --set nodes.student.load=" + (d / "short").string());
  EXPECT_NE(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("--set nodes.student.load=" + (d / "short").string() +
                       ": error: node 'student' (model.llama): node 'corpus' feeds windows of 128 tokens, more than "
                       "the context of 64 (from '" + (d / "short").string() + "')"),
            std::string::npos)
      << r.out;
  r = sh("validate graphs/llama_pretrain.toml --set nodes.student.load=" + (d / "falcon").string());
  EXPECT_NE(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("--set nodes.student.load=" + (d / "falcon").string() + ": error: node 'student' (model.llama)"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("architecture \"FalconForCausalLM\" is not supported; Scion reads LlamaForCausalLM"),
            std::string::npos)
      << r.out;
  // A Llama directory named by a GPT node: the plugins disagree.
  r = sh("validate graphs/gpt_pretrain.toml --set nodes.student.load=" + (d / "ok").string());
  EXPECT_NE(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("holds a model.llama model, but node 'student' is model.gpt"), std::string::npos) << r.out;
  fs::remove_all(d);
}

TEST(HfCommands, ExportRefusesBeforeReadingTheModel) {
  const fs::path d = temp("hf_export_refuse");
  fs::create_directories(d / "run" / "checkpoints");
  fs::create_directories(d / "full");
  std::ofstream(d / "full" / "mine.txt") << "mine";
  Result r = sh("export --checkpoint " + (d / "missing.safetensors").string() + " --out " + (d / "o").string());
  EXPECT_EQ(r.rc, 1 << 8) << r.out;
  EXPECT_NE(r.out.find("--checkpoint '" + (d / "missing.safetensors").string() + "' does not exist"), std::string::npos)
      << r.out;
  r = sh("export --checkpoint " + (d / "run").string() + " --out " + (d / "full").string());
  EXPECT_NE(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("exists and is not empty; nothing is overwritten"), std::string::npos) << r.out;
  EXPECT_EQ(slurp(d / "full" / "mine.txt"), "mine");
  r = sh("export --checkpoint " + (d / "run").string() + " --out " + (d / "run" / "hf").string());
  EXPECT_NE(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("would be onto or inside the input"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(d / "run" / "hf"));
  r = sh("export --checkpoint " + (d / "run").string() + " --out " + (d / "o").string());
  EXPECT_NE(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("no model checkpoint in"), std::string::npos) << r.out;
  // A Hugging Face directory is read as a model (re-exported); this one has no weights.
  write_config(d / "hf", llama_config(128));
  r = sh("export --checkpoint " + (d / "hf").string() + " --out " + (d / "o").string());
  EXPECT_NE(r.rc, 0) << r.out;
  EXPECT_NE(r.out.find("has no weights: neither model.safetensors nor model.safetensors.index.json"), std::string::npos)
      << r.out;
  r = sh("export --checkpoint " + (d / "run").string() + " --out " + (d / "o").string() + " --dtype f16");
  EXPECT_NE(r.out.find("--dtype f16 (f32 or bf16)"), std::string::npos) << r.out;
  r = sh("export --checkpoint " + (d / "run").string() + " --out " + (d / "o").string() + " --max-shard-size 5TB");
  EXPECT_NE(r.out.find("size '5TB'"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(d / "o"));
  fs::remove_all(d);
}

// A trained Llama exported from its run folder: the directory reads back to the checkpoint's
// tensors (the tied head once, under the embedding's name) and its config maps back to the
// checkpoint's config. Needs the model nodes' Model::hf_config overrides.
TEST(HfCommands, ExportWritesTheCheckpointAsAHuggingFaceDirectory) {
  const fs::path d = temp("hf_export");
  Result r = sh("run graphs/llama_pretrain.toml --plain --out " + (d / "run").string() +
                " --set nodes.ppl.max_batches=1 --set stages.0.steps=2 --set stages.0.eval.every=2"
                " --set nodes.student.layers=1 --set nodes.student.width=32 --set nodes.student.ffn=64"
                " --set nodes.student.tied=true");
  ASSERT_EQ(r.rc, 0) << r.out;
  std::ofstream(d / "tokenizer.json") << "{}";
  r = sh("export --checkpoint " + (d / "run").string() + " --out " + (d / "hf").string() +
         " --max-shard-size 2MB --tokenizer " + (d / "tokenizer.json").string());
  if (r.out.find("gives no hf_config") != std::string::npos) GTEST_SKIP() << "model.llama has no hf_config yet: " << r.out;
  ASSERT_EQ(r.rc, 0) << r.out;
  const hf::Directory hfd = hf::read((d / "hf").string());
  EXPECT_TRUE(fs::exists(d / "hf" / "model.safetensors.index.json")) << "the 50257 x 32 embedding alone is 6.4 MB";
  EXPECT_EQ(hfd.tokenizer_files.size(), 1u);
  EXPECT_EQ(json_string(hfd.config.at("architectures").at(0)), "LlamaForCausalLM");
  EXPECT_TRUE(json_bool(hfd.config.at("tie_word_embeddings")));
  const auto ckpt = safetensors::load((d / "run" / "student.safetensors").string());
  std::map<std::string, Tensor> want(ckpt.tensors.begin(), ckpt.tensors.end());
  EXPECT_EQ(want.count("lm_head.weight"), 0u);
  ASSERT_EQ(hfd.tensors.size(), want.size());
  for (const auto& [name, t] : hfd.tensors) {
    ASSERT_TRUE(want.count(name)) << name;
    ASSERT_EQ(t.shape(), want.at(name).shape()) << name;
    EXPECT_EQ(std::memcmp(t.raw_data(), want.at(name).raw_data(), t.nbytes()), 0) << name;
  }
  fs::remove_all(d);
}
