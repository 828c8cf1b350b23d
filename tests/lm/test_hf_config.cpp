// Hugging Face config.json <-> Scion model configs (plugins/lm/hf_config.h): real configs of
// each family map to the keys the model nodes read, map back to the same config.json fields,
// and what Scion would not compute as transformers does is refused by name.
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>

#include "decoder_model.h"
#include "hf_config.h"
#include "lm_nodes.h"

using namespace scion;
using namespace scion::lm;

namespace {

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Llama-3.2-1B's config.json (the fields that matter; tied, GQA 32/8, llama3 rope scaling).
Json llama32_1b() {
  return json_parse(R"({
    "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu",
    "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
    "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
    "num_attention_heads": 32, "num_hidden_layers": 16, "num_key_value_heads": 8,
    "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0.dev0", "use_cache": true, "vocab_size": 128256})");
}

// Qwen2.5-0.5B's.
Json qwen25_05b() {
  return json_parse(R"({
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151643, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
    "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 24,
    "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24,
    "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
    "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16",
    "transformers_version": "4.40.1", "use_cache": true, "use_sliding_window": false,
    "vocab_size": 151936})");
}

Json mistral_7b() {
  return json_parse(R"({
    "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2,
    "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
    "intermediate_size": 14336, "max_position_embeddings": 32768, "model_type": "mistral",
    "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "sliding_window": null,
    "tie_word_embeddings": false, "torch_dtype": "bfloat16", "use_cache": true, "vocab_size": 32768})");
}

Json gpt2_small() {
  return json_parse(R"({
    "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
    "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
    "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12,
    "n_inner": null, "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1,
    "summary_activation": null, "summary_first_dropout": 0.1, "summary_proj_to_labels": true,
    "summary_type": "cls_index", "summary_use_proj": true, "vocab_size": 50257})");
}

Json bert_base() {
  return json_parse(R"({
    "architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1,
    "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768,
    "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-12,
    "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 12,
    "num_hidden_layers": 12, "pad_token_id": 0, "position_embedding_type": "absolute",
    "transformers_version": "4.6.0.dev0", "type_vocab_size": 2, "use_cache": true, "vocab_size": 30522})");
}

// Every field of `original` that `exported` carries must be equal (numbers as numbers,
// objects key by key whatever their order).
void expect_same(const Json& want, const Json& got, const std::string& where) {
  if (want.is_number()) {
    ASSERT_TRUE(got.is_number()) << where;
    EXPECT_DOUBLE_EQ(json_number(got), json_number(want)) << where;
  } else if (want.is_object()) {
    ASSERT_TRUE(got.is_object()) << where;
    for (const auto& [k, v] : want.items()) {
      ASSERT_TRUE(got.contains(k)) << where << "." << k;
      expect_same(v, got.at(k), where + "." + k);
    }
  } else {
    EXPECT_EQ(got, want) << where;
  }
}

void expect_fields_kept(const Json& original, const Json& exported, const std::vector<std::string>& except = {}) {
  for (const auto& [k, v] : original.items()) {
    if (std::find(except.begin(), except.end(), k) != except.end()) continue;
    ASSERT_TRUE(exported.contains(k)) << k;
    expect_same(v, exported.at(k), k);
  }
}

}  // namespace

TEST(HfConfig, Llama3MapsToScionKeysAndBack) {
  const HfImported m = scion_config_from_hf(llama32_1b());
  EXPECT_EQ(m.plugin, "model.llama");
  const Json& c = m.config;
  EXPECT_EQ(json_int(c.at("vocab")), 128256);
  EXPECT_EQ(json_int(c.at("context")), 131072);
  EXPECT_EQ(json_int(c.at("layers")), 16);
  EXPECT_EQ(json_int(c.at("width")), 2048);
  EXPECT_EQ(json_int(c.at("heads")), 32);
  EXPECT_EQ(json_int(c.at("kv_heads")), 8);
  EXPECT_EQ(json_int(c.at("ffn")), 8192);
  EXPECT_FALSE(c.contains("head_size")) << "64 = 2048 / 32: the default, not recorded";
  EXPECT_TRUE(json_bool(c.at("tied")));
  EXPECT_DOUBLE_EQ(json_number(c.at("norm_eps")), 1e-5);
  EXPECT_DOUBLE_EQ(json_number(c.at("rope_theta")), 500000.0);
  EXPECT_DOUBLE_EQ(json_number(c.at("rope_scaling").at("factor")), 32.0);
  EXPECT_EQ(json_int(c.at("rope_scaling").at("original_max_position_embeddings")), 8192);
  EXPECT_FALSE(json_bool(c.at("qkv_bias")));
  EXPECT_FALSE(json_bool(c.at("o_bias")));
  EXPECT_FALSE(json_bool(c.at("mlp_bias")));
  EXPECT_EQ(json_string(c.at("hf_architecture")), "LlamaForCausalLM");
  EXPECT_EQ(json_int(c.at("hf_extra").at("bos_token_id")), 128000);
  EXPECT_EQ(json_string(c.at("hf_extra").at("torch_dtype")), "bfloat16");

  // The model node reads these keys (decoder_config_from_json) and writes them back.
  const DecoderConfig dc = decoder_config_from_json(c, DecoderConfig::of_family("llama"));
  EXPECT_EQ(dc.kv_heads, 8);
  ASSERT_TRUE(dc.rope_scaling.has_value());
  EXPECT_EQ(dc.rope_scaling->original_max_position_embeddings, 8192);
  const Json back = hf_config_for("model.llama", config_to_json(dc));
  expect_fields_kept(llama32_1b(), back);
  EXPECT_EQ(json_string(back.at("rope_scaling").at("rope_type")), "llama3");
}

TEST(HfConfig, Qwen2AndMistralKeepTheirFamily) {
  const HfImported q = scion_config_from_hf(qwen25_05b());
  EXPECT_EQ(q.plugin, "model.llama");
  EXPECT_TRUE(json_bool(q.config.at("qkv_bias")));
  EXPECT_FALSE(json_bool(q.config.at("o_bias")));
  EXPECT_EQ(json_int(q.config.at("kv_heads")), 2);
  EXPECT_TRUE(q.config.at("rope_scaling").is_null());
  const Json qb = hf_config_for("model.llama", q.config);
  expect_fields_kept(qwen25_05b(), qb);
  EXPECT_FALSE(qb.contains("attention_bias")) << "Qwen2's biases are fixed by its architecture";

  const HfImported mi = scion_config_from_hf(mistral_7b());
  EXPECT_FALSE(json_bool(mi.config.at("tied")));
  expect_fields_kept(mistral_7b(), hf_config_for("model.llama", mi.config));

  // Biases its family cannot express are refused on the way out.
  Json c = q.config;
  c["o_bias"] = true;
  EXPECT_NE(error_of([&] { hf_config_for("model.llama", c); }).find("Qwen2 has biases on q/k/v only"), std::string::npos);
  c = mi.config;
  c["mlp_bias"] = true;
  EXPECT_NE(error_of([&] { hf_config_for("model.llama", c); }).find("Mistral has no biases"), std::string::npos);
  // A head size other than width / heads is kept both ways.
  Json h = llama32_1b();
  h["head_dim"] = 128;
  const HfImported hm = scion_config_from_hf(h);
  EXPECT_EQ(json_int(hm.config.at("head_size")), 128);
  EXPECT_EQ(json_int(hf_config_for("model.llama", hm.config).at("head_dim")), 128);
}

TEST(HfConfig, WhatScionWouldNotComputeIsRefused) {
  auto refused = [](Json j, const std::string& want) {
    const std::string e = error_of([&] { scion_config_from_hf(j, "dir/config.json"); });
    EXPECT_NE(e.find(want), std::string::npos) << e;
    EXPECT_NE(e.find("dir/config.json"), std::string::npos) << e;
  };
  Json j = llama32_1b();
  j["architectures"] = Json::array({"FalconForCausalLM"});
  j["model_type"] = "falcon";
  refused(j, "architecture \"FalconForCausalLM\" is not supported; Scion reads LlamaForCausalLM, Qwen2ForCausalLM, "
             "MistralForCausalLM, GPT2LMHeadModel, BertForMaskedLM");
  j = llama32_1b();
  j["rope_scaling"]["rope_type"] = "yarn";
  refused(j, "rope_scaling.rope_type 'yarn' is not supported (llama3 or none)");
  j = llama32_1b();
  j["hidden_act"] = "gelu";
  refused(j, "hidden_act \"gelu\" is not supported");
  j = llama32_1b();
  j["num_key_value_heads"] = 5;
  refused(j, "num_key_value_heads 5 does not divide num_attention_heads 32");
  j = llama32_1b();
  j.erase("intermediate_size");
  refused(j, "the field \"intermediate_size\" is missing");
  j = llama32_1b();
  j["num_hidden_layers"] = "16";
  refused(j, "\"num_hidden_layers\" = \"16\"");
  j = mistral_7b();
  j["sliding_window"] = 4096;
  refused(j, "sliding_window 4096 is smaller than max_position_embeddings 32768 (Scion attends the full context");
  j = qwen25_05b();
  j["use_sliding_window"] = true;
  refused(j, "use_sliding_window is true");
  j = gpt2_small();
  j["layer_norm_epsilon"] = 1e-6;
  refused(j, "\"layer_norm_epsilon\" = 1e-06 but Scion's GPT uses 1e-5");
  j = gpt2_small();
  j["activation_function"] = "relu";
  refused(j, "activation_function \"relu\" is not supported");
  j = bert_base();
  refused(j, "hidden_act \"gelu\" is not computed by Scion's BERT");
  j["hidden_act"] = "gelu_new";
  j["type_vocab_size"] = 3;
  refused(j, "type_vocab_size is 3");
  j = bert_base();
  j["hidden_act"] = "gelu_new";
  j["layer_norm_eps"] = 1e-5;
  refused(j, "\"layer_norm_eps\" = 1e-05 but Scion's BERT uses 1e-12");
}

TEST(HfConfig, Gpt2AndBertMapBothWays) {
  const HfImported g = scion_config_from_hf(gpt2_small());
  EXPECT_EQ(g.plugin, "model.gpt");
  EXPECT_EQ(json_int(g.config.at("context")), 1024);
  EXPECT_EQ(json_int(g.config.at("ffn")), 3072) << "n_inner null: 4 * n_embd";
  EXPECT_TRUE(json_bool(g.config.at("tied")));
  const Json gb = hf_config_for("model.gpt", g.config);
  expect_fields_kept(gpt2_small(), gb, {"n_inner"});
  EXPECT_EQ(json_int(gb.at("n_inner")), 3072);

  // bert-base-uncased's erf GELU only with the explicit approximation.
  HfImportOptions approx;
  approx.approximate_gelu = true;
  const HfImported b = scion_config_from_hf(bert_base(), "config.json", approx);
  EXPECT_EQ(b.plugin, "model.bert");
  EXPECT_EQ(json_int(b.config.at("type_vocab")), 2);
  EXPECT_EQ(json_int(b.config.at("vocab")), 30522);
  const Json bb = hf_config_for("model.bert", b.config);
  expect_fields_kept(bert_base(), bb, {"hidden_act"});
  EXPECT_EQ(json_string(bb.at("hidden_act")), "gelu_new") << "what Scion computes";
}

TEST(HfConfig, ExportRefusesPerLayerSizesAndOtherPlugins) {
  Json c = scion_config_from_hf(llama32_1b()).config;
  c["layer_ffn"] = Json::array({100, 200});
  std::string e = error_of([&] { hf_config_for("model.llama", c); });
  EXPECT_NE(e.find("per-layer sizes (\"layer_ffn\""), std::string::npos) << e;
  EXPECT_NE(e.find("one size for all layers"), std::string::npos) << e;
  e = error_of([&] { hf_config_for("model.mine", Json::object()); });
  EXPECT_NE(e.find("model model.mine cannot be exported to Hugging Face format"), std::string::npos) << e;
}
