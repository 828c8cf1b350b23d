// Hugging Face config.json <-> Scion model configs (hf_config.h).
#include "hf_config.h"

#include <algorithm>
#include <cmath>

#include "scion/error.h"

namespace scion::lm {

namespace {

struct Family {
  std::string architecture, model_type, plugin;
};

const std::vector<Family>& families() {
  static const std::vector<Family> f = {{"LlamaForCausalLM", "llama", "model.llama"},
                                        {"Qwen2ForCausalLM", "qwen2", "model.llama"},
                                        {"MistralForCausalLM", "mistral", "model.llama"},
                                        {"GPT2LMHeadModel", "gpt2", "model.gpt"},
                                        {"BertForMaskedLM", "bert", "model.bert"}};
  return f;
}

std::string supported_list() {
  std::string s;
  for (const auto& f : families()) s += (s.empty() ? "" : ", ") + f.architecture;
  return s;
}

// The fields every family reads, with the config's name in errors.
class Reader {
 public:
  Reader(const Json& j, std::string source) : j_(j), source_(std::move(source)) {}
  bool has(const char* k) const { return j_.contains(k) && !j_.at(k).is_null(); }
  const Json& at(const char* k) const { return j_.at(k); }
  int64_t integer(const char* k) const {
    SCION_CHECK(has(k), source_, ": the field \"", k, "\" is missing (a ", arch_, " config needs it)");
    try {
      const int64_t v = json_int(j_.at(k));
      SCION_CHECK(v > 0, "it must be positive");
      return v;
    } catch (const Error& e) {
      throw Error(source_ + ": \"" + k + "\" = " + json_dump(j_.at(k)) + ": " + e.what());
    }
  }
  int64_t integer(const char* k, int64_t fallback) const { return has(k) ? integer(k) : fallback; }
  double number(const char* k, double fallback) const {
    if (!has(k)) return fallback;
    try {
      return json_number(j_.at(k));
    } catch (const Error& e) {
      throw Error(source_ + ": \"" + k + "\" = " + json_dump(j_.at(k)) + ": " + e.what());
    }
  }
  bool boolean(const char* k, bool fallback) const {
    if (!has(k)) return fallback;
    SCION_CHECK(j_.at(k).is_boolean(), source_, ": \"", k, "\" = ", json_dump(j_.at(k)), " is not true or false");
    return j_.at(k).get<bool>();
  }
  std::string string(const char* k, const std::string& fallback) const {
    if (!has(k)) return fallback;
    SCION_CHECK(j_.at(k).is_string(), source_, ": \"", k, "\" = ", json_dump(j_.at(k)), " is not a string");
    return json_string(j_.at(k));
  }
  // The fields that change nothing Scion computes, kept for the way back.
  Json extra(const std::vector<const char*>& keys) const {
    Json e = Json::object();
    for (const char* k : keys)
      if (j_.contains(k)) e[k] = j_.at(k);
    return e;
  }
  [[noreturn]] void refuse(const std::string& what, const std::string& hint) const {
    throw Error(source_ + ": " + what + " (" + hint + ")");
  }
  std::string arch_;

 private:
  const Json& j_;
  std::string source_;
};

// Harmless everywhere: ids, dtypes, dropouts and initialisation, the library version.
const std::vector<const char*> kCommonExtra = {"bos_token_id", "eos_token_id", "pad_token_id", "torch_dtype",
                                               "initializer_range", "transformers_version", "use_cache"};

std::vector<const char*> with_common(std::vector<const char*> keys) {
  keys.insert(keys.begin(), kCommonExtra.begin(), kCommonExtra.end());
  return keys;
}

void require_close(const Reader& r, const char* key, double value, double want, const std::string& why) {
  if (!(std::fabs(value - want) <= 1e-3 * want))
    r.refuse("\"" + std::string(key) + "\" = " + json_dump(Json(value)) + " but " + why, "Scion's model uses " +
                                                                                     json_dump(Json(want)));
}

Json import_llama(const Reader& r, const Family& f) {
  const std::string act = r.string("hidden_act", "silu");
  if (act != "silu") r.refuse("hidden_act \"" + act + "\" is not supported", "Llama-family models use silu (SwiGLU)");
  Json c;
  c["vocab"] = Json(r.integer("vocab_size"));
  c["context"] = Json(r.integer("max_position_embeddings"));
  c["layers"] = Json(r.integer("num_hidden_layers"));
  const int64_t width = r.integer("hidden_size"), heads = r.integer("num_attention_heads");
  const int64_t kv = r.integer("num_key_value_heads", heads);
  c["width"] = Json(width);
  c["heads"] = Json(heads);
  if (heads % kv != 0)
    r.refuse("num_key_value_heads " + std::to_string(kv) + " does not divide num_attention_heads " +
                 std::to_string(heads),
             "each key/value head serves the same number of query heads");
  c["kv_heads"] = Json(kv);
  c["ffn"] = Json(r.integer("intermediate_size"));
  const int64_t head_dim = r.integer("head_dim", 0);
  if (head_dim == 0 && width % heads != 0)
    r.refuse("hidden_size " + std::to_string(width) + " is not divisible by num_attention_heads " + std::to_string(heads),
             "give head_dim");
  if (head_dim != 0 && head_dim * heads != width) c["head_size"] = Json(head_dim);
  c["tied"] = Json(r.boolean("tie_word_embeddings", false));
  c["norm_eps"] = Json(r.number("rms_norm_eps", 1e-6));
  c["rope_theta"] = Json(r.number("rope_theta", 10000.0));
  for (const char* k : {"norm_eps", "rope_theta"})
    if (!(json_number(c.at(k)) > 0) || !std::isfinite(json_number(c.at(k))))
      r.refuse(std::string(k == std::string("norm_eps") ? "rms_norm_eps" : "rope_theta") + " = " + json_dump(c.at(k)),
               "it must be a positive number");
  c["rope_scaling"] = Json();
  if (r.has("rope_scaling")) {
    const Json& s = r.at("rope_scaling");
    if (!s.is_object()) r.refuse("rope_scaling is not an object", "null or {\"rope_type\": \"llama3\", ...}");
    const Reader rs(s, "rope_scaling");
    const std::string type = rs.string("rope_type", rs.string("type", "default"));
    if (type == "llama3") {
      Json o;
      o["factor"] = Json(rs.number("factor", 0));
      o["low_freq_factor"] = Json(rs.number("low_freq_factor", 0));
      o["high_freq_factor"] = Json(rs.number("high_freq_factor", 0));
      o["original_max_position_embeddings"] = Json(rs.integer("original_max_position_embeddings", 0));
      for (const auto& [k, v] : o.items())
        if (json_number(v) <= 0)
          r.refuse("rope_scaling." + k + " is missing or not positive", "Llama 3's rope scaling needs factor, "
                                                                         "low_freq_factor, high_freq_factor and "
                                                                         "original_max_position_embeddings");
      c["rope_scaling"] = std::move(o);
    } else if (type != "default") {
      r.refuse("rope_scaling.rope_type '" + type + "' is not supported", "llama3 or none");
    }
  }
  const bool qwen2 = f.model_type == "qwen2", mistral = f.model_type == "mistral";
  const bool attention_bias = r.boolean("attention_bias", false);
  c["qkv_bias"] = Json(qwen2 ? true : attention_bias);
  c["o_bias"] = Json(qwen2 ? false : attention_bias);
  c["mlp_bias"] = Json(r.boolean("mlp_bias", false));
  if (mistral && r.has("sliding_window") &&
      r.integer("sliding_window") < r.integer("max_position_embeddings"))
    r.refuse("sliding_window " + std::to_string(r.integer("sliding_window")) + " is smaller than max_position_embeddings " +
                 std::to_string(r.integer("max_position_embeddings")),
             "Scion attends the full context; a model trained with a window would see more than it was trained on");
  if (qwen2 && r.boolean("use_sliding_window", false))
    r.refuse("use_sliding_window is true", "Scion attends the full context; set it false if the model allows");
  c["hf_architecture"] = Json(f.architecture);
  c["hf_extra"] = r.extra(with_common(
      {"attention_dropout", "pretraining_tp", "sliding_window", "use_sliding_window", "max_window_layers"}));
  return c;
}

Json import_gpt2(const Reader& r, const Family& f) {
  const std::string act = r.string("activation_function", "gelu_new");
  if (act != "gelu_new" && act != "gelu_pytorch_tanh")
    r.refuse("activation_function \"" + act + "\" is not supported", "Scion's GPT computes the tanh GELU, gelu_new");
  require_close(r, "layer_norm_epsilon", r.number("layer_norm_epsilon", 1e-5), 1e-5, "Scion's GPT uses 1e-5");
  if (!r.boolean("scale_attn_weights", true)) r.refuse("scale_attn_weights is false", "Scion scales by 1/sqrt(head size)");
  if (r.boolean("scale_attn_by_inverse_layer_idx", false))
    r.refuse("scale_attn_by_inverse_layer_idx is true", "Scion scales attention by 1/sqrt(head size) only");
  Json c;
  c["vocab"] = Json(r.integer("vocab_size"));
  c["context"] = Json(r.has("n_positions") ? r.integer("n_positions") : r.integer("n_ctx"));
  c["layers"] = Json(r.integer("n_layer"));
  const int64_t width = r.integer("n_embd"), heads = r.integer("n_head");
  if (width % heads != 0)
    r.refuse("n_embd " + std::to_string(width) + " is not divisible by n_head " + std::to_string(heads),
             "GPT-2's head size is n_embd / n_head");
  c["width"] = Json(width);
  c["heads"] = Json(heads);
  c["ffn"] = Json(r.integer("n_inner", 4 * width));
  c["tied"] = Json(r.boolean("tie_word_embeddings", true));
  c["hf_architecture"] = Json(f.architecture);
  c["hf_extra"] = r.extra(with_common({"n_ctx", "attn_pdrop", "embd_pdrop", "resid_pdrop", "summary_activation",
                                       "summary_first_dropout", "summary_proj_to_labels", "summary_type",
                                       "summary_use_proj", "task_specific_params"}));
  return c;
}

Json import_bert(const Reader& r, const Family& f, const HfImportOptions& options) {
  const std::string act = r.string("hidden_act", "gelu");
  const bool tanh_gelu = act == "gelu_new" || act == "gelu_pytorch_tanh";
  if (!tanh_gelu && !(act == "gelu" && options.approximate_gelu))
    r.refuse("hidden_act \"" + act + "\" is not computed by Scion's BERT, which uses the tanh GELU (gelu_new)",
             act == "gelu" ? "the erf GELU differs from it by up to about 1e-3; accept the approximation explicitly "
                             "(scion: approximate_gelu) or convert the model"
                           : "use a model with gelu_new");
  require_close(r, "layer_norm_eps", r.number("layer_norm_eps", 1e-12), 1e-12, "Scion's BERT uses 1e-12");
  if (r.integer("type_vocab_size", 2) != 2)
    r.refuse("type_vocab_size is " + std::to_string(r.integer("type_vocab_size")), "Scion's BERT has 2 token types");
  const std::string pos = r.string("position_embedding_type", "absolute");
  if (pos != "absolute") r.refuse("position_embedding_type \"" + pos + "\"", "Scion's BERT learns absolute positions");
  Json c;
  c["vocab"] = Json(r.integer("vocab_size"));
  c["context"] = Json(r.integer("max_position_embeddings"));
  c["layers"] = Json(r.integer("num_hidden_layers"));
  const int64_t width = r.integer("hidden_size"), heads = r.integer("num_attention_heads");
  if (width % heads != 0)
    r.refuse("hidden_size " + std::to_string(width) + " is not divisible by num_attention_heads " + std::to_string(heads),
             "BERT's head size is hidden_size / num_attention_heads");
  c["width"] = Json(width);
  c["heads"] = Json(heads);
  c["ffn"] = Json(r.integer("intermediate_size"));
  c["tied"] = Json(r.boolean("tie_word_embeddings", true));
  c["type_vocab"] = Json(2);
  c["hf_architecture"] = Json(f.architecture);
  c["hf_extra"] = r.extra(with_common({"attention_probs_dropout_prob", "hidden_dropout_prob", "classifier_dropout",
                                       "gradient_checkpointing"}));
  return c;
}

// ---- export -----------------------------------------------------------------------------

class Config {
 public:
  Config(const Json& j, std::string plugin) : j_(j), plugin_(std::move(plugin)) {
    SCION_CHECK(j.is_object(), plugin_, " config is not a JSON object");
  }
  int64_t integer(const char* k) const {
    SCION_CHECK(j_.contains(k), "Hugging Face export: the ", plugin_, " config has no \"", k, "\"");
    return json_int(j_.at(k));
  }
  int64_t integer(const char* k, int64_t fallback) const { return j_.contains(k) ? json_int(j_.at(k)) : fallback; }
  double number(const char* k, double fallback) const { return j_.contains(k) ? json_number(j_.at(k)) : fallback; }
  bool boolean(const char* k, bool fallback) const { return j_.contains(k) ? json_bool(j_.at(k)) : fallback; }
  bool has(const char* k) const { return j_.contains(k) && !j_.at(k).is_null(); }
  const Json& at(const char* k) const { return j_.at(k); }
  int64_t ffn() const {
    const int64_t f = integer("ffn", 0);
    return f > 0 ? f : 4 * integer("width");
  }
  // hf_extra written under the mapped fields (never over them).
  void add_extra(Json& out) const {
    if (!has("hf_extra")) return;
    for (const auto& [k, v] : at("hf_extra").items())
      if (!out.contains(k)) out[k] = v;
  }
  void refuse(const std::string& what) const { throw Error("Hugging Face export of " + plugin_ + ": " + what); }

 private:
  const Json& j_;
  std::string plugin_;
};

const Family& family_named(const std::string& architecture, const std::string& plugin) {
  for (const auto& f : families())
    if (f.architecture == architecture && f.plugin == plugin) return f;
  throw Error("Hugging Face export of " + plugin + ": hf_architecture \"" + architecture + "\" is not one of " +
              plugin + "'s (" + supported_list() + ")");
}

Json export_llama(const Config& c) {
  const Family& f =
      family_named(c.has("hf_architecture") ? json_string(c.at("hf_architecture")) : "LlamaForCausalLM", "model.llama");
  const bool qkv = c.boolean("qkv_bias", false), o = c.boolean("o_bias", false), mlp = c.boolean("mlp_bias", false);
  if (f.model_type == "qwen2" && (!qkv || o || mlp))
    c.refuse("Qwen2 has biases on q/k/v only, this model has qkv_bias " + std::string(qkv ? "true" : "false") +
             ", o_bias " + (o ? "true" : "false") + ", mlp_bias " + (mlp ? "true" : "false") +
             " (set hf_architecture to LlamaForCausalLM when q/k/v and o biases agree)");
  if (f.model_type == "mistral" && (qkv || o || mlp))
    c.refuse("Mistral has no biases; this model has some (set hf_architecture to LlamaForCausalLM)");
  if (f.model_type == "llama" && qkv != o)
    c.refuse("Llama's attention_bias covers q, k, v and o together; this model has qkv_bias " +
             std::string(qkv ? "true" : "false") + " and o_bias " + (o ? "true" : "false") +
             " (Qwen2ForCausalLM has q/k/v biases only)");
  const int64_t width = c.integer("width"), heads = c.integer("heads");
  Json h;
  h["architectures"] = Json::array({f.architecture});
  h["model_type"] = f.model_type;
  h["vocab_size"] = c.integer("vocab");
  h["max_position_embeddings"] = c.integer("context");
  h["hidden_size"] = width;
  h["intermediate_size"] = c.ffn();
  h["num_hidden_layers"] = c.integer("layers");
  h["num_attention_heads"] = heads;
  const int64_t kv = c.integer("kv_heads", 0);
  h["num_key_value_heads"] = kv > 0 ? kv : heads;
  h["head_dim"] = c.integer("head_size", 0) > 0 ? c.integer("head_size") : width / heads;
  h["hidden_act"] = "silu";
  h["rms_norm_eps"] = c.number("norm_eps", 1e-6);
  h["rope_theta"] = c.number("rope_theta", 10000.0);
  if (c.has("rope_scaling")) {
    Json s;
    s["rope_type"] = "llama3";
    for (const auto& [k, v] : c.at("rope_scaling").items()) s[k] = v;
    h["rope_scaling"] = std::move(s);
  } else {
    h["rope_scaling"] = Json();
  }
  h["tie_word_embeddings"] = c.boolean("tied", false);
  if (f.model_type == "llama") {
    h["attention_bias"] = qkv;
    h["mlp_bias"] = mlp;
  }
  c.add_extra(h);
  if (f.model_type == "mistral" && !h.contains("sliding_window")) h["sliding_window"] = Json();
  if (f.model_type == "qwen2") h["use_sliding_window"] = false;
  return h;
}

Json export_gpt2(const Config& c) {
  if (c.integer("kv_heads", 0) > 0 && c.integer("kv_heads") != c.integer("heads"))
    c.refuse("GPT-2 has no grouped key/value heads");
  if (c.integer("head_size", 0) > 0 && c.integer("head_size") * c.integer("heads") != c.integer("width"))
    c.refuse("GPT-2's head size is n_embd / n_head; this model's head_size differs");
  Json h;
  h["architectures"] = Json::array({"GPT2LMHeadModel"});
  h["model_type"] = "gpt2";
  h["vocab_size"] = c.integer("vocab");
  h["n_positions"] = c.integer("context");
  h["n_embd"] = c.integer("width");
  h["n_layer"] = c.integer("layers");
  h["n_head"] = c.integer("heads");
  h["n_inner"] = c.ffn();
  h["activation_function"] = "gelu_new";
  h["layer_norm_epsilon"] = 1e-5;
  h["tie_word_embeddings"] = c.boolean("tied", true);
  c.add_extra(h);
  return h;
}

Json export_bert(const Config& c) {
  if (c.integer("head_size", 0) > 0 && c.integer("head_size") * c.integer("heads") != c.integer("width"))
    c.refuse("BERT's head size is hidden_size / num_attention_heads; this model's head_size differs");
  Json h;
  h["architectures"] = Json::array({"BertForMaskedLM"});
  h["model_type"] = "bert";
  h["vocab_size"] = c.integer("vocab");
  h["max_position_embeddings"] = c.integer("context");
  h["hidden_size"] = c.integer("width");
  h["num_hidden_layers"] = c.integer("layers");
  h["num_attention_heads"] = c.integer("heads");
  h["intermediate_size"] = c.ffn();
  h["hidden_act"] = "gelu_new";
  h["layer_norm_eps"] = 1e-12;
  h["type_vocab_size"] = 2;
  h["position_embedding_type"] = "absolute";
  h["tie_word_embeddings"] = c.boolean("tied", true);
  c.add_extra(h);
  return h;
}

}  // namespace

const std::vector<std::string>& hf_supported_architectures() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> n;
    for (const auto& f : families()) n.push_back(f.architecture);
    return n;
  }();
  return names;
}

std::vector<std::string> hf_architectures_of(const std::string& plugin) {
  std::vector<std::string> n;
  for (const auto& f : families())
    if (f.plugin == plugin) n.push_back(f.architecture);
  return n;
}

HfImported scion_config_from_hf(const Json& hf, const std::string& source, const HfImportOptions& options) {
  SCION_CHECK(hf.is_object(), source, ": not a JSON object");
  Reader r(hf, source);
  std::string arch;
  if (r.has("architectures")) {
    const Json& a = r.at("architectures");
    SCION_CHECK(a.is_array() && !a.empty() && a.at(0).is_string(), source,
                ": \"architectures\" is not a list of names, e.g. [\"LlamaForCausalLM\"]");
    arch = json_string(a.at(0));
  }
  const std::string type = r.string("model_type", "");
  const Family* family = nullptr;
  for (const auto& f : families())
    if (arch.empty() ? f.model_type == type : f.architecture == arch) family = &f;
  if (!family)
    throw Error(source + ": architecture " +
                (arch.empty() ? "(none; model_type \"" + type + "\")" : "\"" + arch + "\"") +
                " is not supported; Scion reads " + supported_list());
  if (!type.empty() && type != family->model_type)
    throw Error(source + ": model_type \"" + type + "\" does not match architecture " + family->architecture +
                " (model_type \"" + family->model_type + "\")");
  r.arch_ = family->architecture;
  HfImported out;
  out.plugin = family->plugin;
  if (family->plugin == "model.llama") out.config = import_llama(r, *family);
  else if (family->plugin == "model.gpt") out.config = import_gpt2(r, *family);
  else out.config = import_bert(r, *family, options);
  return out;
}

Json hf_config_for(const std::string& plugin, const Json& scion_config) {
  const Config c(scion_config, plugin);
  if (c.has("layer_kv_map")) {
    const Json::array_t& maps = json_array(c.at("layer_kv_map"));
    for (size_t l = 0; l < maps.size(); ++l)
      if (!json_array(maps[l]).empty())
        c.refuse("layer " + std::to_string(l) + " groups its query heads unevenly over its key/value heads (" +
                 json_dump(maps[l]) + ": the key/value head of each query head, after pruning); transformers' " +
                 "Llama repeats every key/value head over an equal group of query heads, so no from_pretrained " +
                 "class would compute this model");
  }
  for (const char* k : {"layer_heads", "layer_ffn", "layer_kv_heads"})
    if (c.has(k) && !json_array(c.at(k)).empty())
      c.refuse(std::string("the model has per-layer sizes (\"") + k +
               "\", a pruned model); Hugging Face's config.json has one size for all layers, so no "
               "from_pretrained class would load it");
  if (plugin == "model.llama") return export_llama(c);
  if (plugin == "model.gpt") return export_gpt2(c);
  if (plugin == "model.bert") return export_bert(c);
  throw Error("model " + plugin + " cannot be exported to Hugging Face format (exported: model.gpt as " +
              "GPT2LMHeadModel, model.bert as BertForMaskedLM, model.llama as Llama/Qwen2/Mistral)");
}

}  // namespace scion::lm

namespace scion::lm {

Json hf_config_for_family(const std::string& family, const Json& scion_config) {
  if (family == "gpt2") return hf_config_for("model.gpt", scion_config);
  if (family == "bert") return hf_config_for("model.bert", scion_config);
  if (family == "llama") return hf_config_for("model.llama", scion_config);
  throw Error("transformer family '" + family + "' has no Hugging Face form (gpt2, bert, llama)");
}

}  // namespace scion::lm
