// Facts for the graph checks (graph_facts.h).
#include "graph_facts.h"

#include <filesystem>
#include <map>
#include <mutex>

#include "scion/checkpoint.h"
#include "scion/data.h"
#include "scion/files.h"
#include "scion/hf_directory.h"
#include "scion/safetensors.h"
#include "hf_config.h"

namespace scion::lm {

namespace fs = std::filesystem;

namespace {

std::mutex facts_mutex;

// Size and modification time of a file: a cache key that changes when the file does.
std::string file_stamp(const std::string& path) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  const auto time = fs::last_write_time(path, ec);
  return path + "#" + std::to_string(ec ? 0 : size) + "#" + std::to_string(ec ? 0 : time.time_since_epoch().count());
}

}  // namespace

const TokenizerFacts& tokenizer_facts(const GraphView& g, const GraphNodeView& n) {
  static std::map<std::string, TokenizerFacts> cache;
  // The plugin, its parameters and the files they name: what the tokenizer is made from.
  std::string key = n.plugin + " " + json_dump(n.params.all());
  for (const auto& [k, v] : n.params.all().items()) {
    std::error_code ec;
    if (v.is_string() && !json_string(v).empty() && fs::is_regular_file(json_string(v), ec))
      key.append(" ").append(file_stamp(json_string(v)));  // (not " " + ...: GCC 12's -Wrestrict false positive)
  }
  std::lock_guard<std::mutex> lock(facts_mutex);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  TokenizerFacts f;
  try {
    // Made by the host's node factory, whichever library the tokenizer plugin is in.
    if (!g.tokenizer) throw Error("this host makes no tokenizer at validation (SDK before 6.4)");
    f.tokenizer = g.tokenizer(n.name);
    if (!f.tokenizer) throw Error("node '" + n.name + "' (" + n.plugin + ") makes no scion::Tokenizer");
  } catch (const std::exception& e) {
    f.error = e.what();
  }
  if (cache.size() > 64) cache.clear();  // a long-lived process (the fuzzer) sees many
  return cache.emplace(key, std::move(f)).first->second;
}

const GraphNodeView* tokenizer_feeding(const GraphView& g, const GraphNodeView& model) {
  const GraphNodeView* at = &model;
  for (int hops = 0; hops < 16; ++hops) {  // a chain through prompt nodes; never a cycle
    const GraphNodeView* src = g.input_source(*at, "tokens");
    if (!src) return nullptr;
    if (src->kind == PluginKind::data) {
      if (!src->params.has("tokenizer") || !src->params.raw("tokenizer").is_string()) return nullptr;
      const GraphNodeView* tok = g.node(src->params.string("tokenizer"));
      return tok && tok->kind == PluginKind::tokenizer ? tok : nullptr;
    }
    at = src;
  }
  return nullptr;
}

const CheckpointFacts& checkpoint_facts(const std::string& path) {
  static std::map<std::string, CheckpointFacts> cache;
  // A Hugging Face directory is described by its config.json (the weights are not read).
  std::error_code ec;
  const bool directory = fs::is_directory(path, ec);
  const std::string key = directory ? "dir " + file_stamp((fs::path(path) / hf::kConfigFile).string()) : file_stamp(path);
  std::lock_guard<std::mutex> lock(facts_mutex);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  CheckpointFacts f;
  try {
    if (directory) {
      HfImported imported = scion_config_from_hf(hf::read_config(path), (fs::path(path) / hf::kConfigFile).string());
      f.plugin = std::move(imported.plugin);
      f.config = std::move(imported.config);
      if (cache.size() > 64) cache.clear();
      return cache.emplace(key, std::move(f)).first->second;
    }
    const safetensors::Metadata m = safetensors::load_metadata(path);
    if (auto p = m.find(checkpoint::kPluginKey); p != m.end()) f.plugin = p->second;
    if (auto c = m.find(checkpoint::kConfigKey); c != m.end()) {
      f.config = json_parse(c->second, path + " (" + checkpoint::kConfigKey + ")");
      if (!f.config.is_object()) throw Error(path + ": " + checkpoint::kConfigKey + " is not a JSON object");
    }
  } catch (const std::exception& e) {
    f.error = e.what();
    f.config = Json();
  }
  if (cache.size() > 64) cache.clear();
  return cache.emplace(key, std::move(f)).first->second;
}

namespace {
int64_t model_size(const GraphNodeView& m, const char* key) {
  if (m.params.has("load") && m.params.raw("load").is_string() && !m.params.string("load").empty()) {
    const CheckpointFacts& c = checkpoint_facts(m.params.string("load"));
    if (c.config.is_object() && c.config.contains(key) && c.config.at(key).is_number_integer())
      return c.config.at(key).get<int64_t>();
  }
  if (m.params.has(key) && m.params.raw(key).is_number_integer()) return m.params.integer(key);
  return -1;
}
}  // namespace

int64_t model_vocab(const GraphNodeView& m) { return model_size(m, "vocab"); }
int64_t model_context(const GraphNodeView& m) { return model_size(m, "context"); }

bool makes_a_window(const std::vector<std::string>& globs, const scion::Tokenizer& tok, int64_t seq_len) {
  std::vector<std::string> paths;
  try {
    paths = files::expand(globs, "validation");
  } catch (const Error&) {
    return true;  // no file: the path check of the schema says so already
  }
  uintmax_t bytes = 0;
  for (const auto& p : paths) {
    std::error_code ec;
    const auto n = fs::file_size(p, ec);
    bytes += ec ? 0 : n;
  }
  constexpr uintmax_t kTokenizeUpTo = uintmax_t(256) << 10;  // a fraction of a second to tokenize
  if (bytes > kTokenizeUpTo) return 2 * bytes + 1 >= uintmax_t(seq_len) + 1;
  if (2 * bytes + 1 < uintmax_t(seq_len) + 1) return false;  // no tokenizer makes that many
  static std::map<std::string, bool> cache;
  std::string key = std::to_string(reinterpret_cast<uintptr_t>(&tok)) + " " + std::to_string(seq_len);
  for (const auto& p : paths) key += " " + file_stamp(p);
  {
    std::lock_guard<std::mutex> lock(facts_mutex);
    if (auto it = cache.find(key); it != cache.end()) return it->second;
  }
  bool ok = true;
  try {
    data::TokenizeFn fn = [&tok](std::string_view s) { return tok.encode(s); };
    ok = !data::TextStream::all_windows(paths, fn, tok.eot_id(), seq_len).empty();
  } catch (const std::exception&) {
    ok = true;  // unreadable here: the node's own error will say what it is
  }
  std::lock_guard<std::mutex> lock(facts_mutex);
  if (cache.size() > 256) cache.clear();
  cache[key] = ok;
  return ok;
}

int64_t padded_vocab(int64_t tok_vocab) { return (tok_vocab + 127) / 128 * 128; }

bool vocab_fits_tokenizer(int64_t model_vocab, int64_t tok_vocab) {
  return model_vocab >= tok_vocab && model_vocab <= padded_vocab(tok_vocab);
}

}  // namespace scion::lm
