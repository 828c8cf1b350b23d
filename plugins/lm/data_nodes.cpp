// data.text (streaming text, optional BERT masking) and data.shards (llm.c token shards, uint16 or uint32).
#include <algorithm>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>

#include "graph_facts.h"
#include "scion/data.h"
#include "scion/files.h"
#include "scion/plugin.h"
#include "scion/random.h"
#include "scion/shards.h"
#include "scion/sizes.h"

namespace scion::lm {
namespace {

using data::Batch;
using data::TextStream;

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// With stage_files = { <stage> = [globs] }, the named stages read their own files (a domain
// post-training stage, ELLE's stream of domains) and every other stage reads `files`. Each
// file set keeps its own stream and position, so a stage that returns to a set continues it.
class TextNode final : public DataSource {
 public:
  TextNode(const Params& p, const NodeResolver& r) : p_(p) {
    tok_ = r.get<scion::Tokenizer>(p.string("tokenizer"));
    SCION_CHECK(tok_->eot_id() >= 0, "data.text: the tokenizer has no end-of-text id to separate documents");
    auto t = tok_;
    tokenize_ = [t](std::string_view s) { return t->encode(s); };
    streams_[""] = make_stream(p.strings("files"), 0);
    const Json& by_stage = p.raw("stage_files");
    if (by_stage.is_object()) {
      const std::vector<std::string> stages = p.context().stages;
      for (const auto& [stage, globs] : json_object(by_stage)) {
        SCION_CHECK(std::find(stages.begin(), stages.end(), stage) != stages.end(), "data.text: stage_files names stage '",
                    stage, "', which the graph does not have (its stages: ", join(stages), ")");
        std::vector<std::string> files;
        SCION_CHECK(globs.is_array(), "data.text: stage_files.", stage, " must be a list of files (globs)");
        for (const Json& g : json_array(globs)) files.push_back(json_string(g));
        streams_[stage] = make_stream(files, hash_name(stage));
      }
    }
    mlm_.prob = float(p.number("mlm_prob"));
    mlm_.mask_id = p.integer("mask_id");
    mlm_.vocab = tok_->vocab_size();
    for (int64_t id : p.integers("never_mask")) mlm_.never_mask.push_back(id);
  }
  TensorMap next(const StepContext& ctx) override {
    auto it = streams_.find(ctx.stage);
    // RankShard deals a step's windows round-robin: local row j is row j·world + rank of the
    // global batch, and its mask is the one a single process would draw for that row.
    return finish((it == streams_.end() ? *streams_.at("") : *it->second).next(),
                  derive_seed(p_.context().seed, 0x6d6c6d00ull + uint64_t(ctx.step)), p_.context().rank,
                  p_.context().world);
  }

 private:
  std::unique_ptr<TextStream> make_stream(const std::vector<std::string>& files, uint64_t salt) const {
    data::TextStreamConfig c;
    c.files = files;
    c.seq_len = p_.integer("seq_len");
    c.batch_size = p_.integer("batch_size");
    c.seed = salt == 0 ? p_.context().seed : derive_seed(p_.context().seed, salt);
    c.shuffle = p_.boolean("shuffle");
    c.shuffle_buffer = p_.integer("shuffle_buffer");
    c.rank = p_.context().rank;
    c.world = p_.context().world;
    return std::make_unique<TextStream>(c, tokenize_, tok_->eot_id());
  }

 public:
  std::vector<TensorMap> validation(int64_t max_batches) override {
    std::vector<TensorMap> out;
    if (!p_.has("valid_files") || p_.strings("valid_files").empty()) return out;
    auto windows = TextStream::all_windows(files::expand(p_.strings("valid_files"), "data.text"), tokenize_,
                                           tok_->eot_id(), p_.integer("seq_len"));
    // The validation set is max_batches global batches (batch_size × world windows each), cut
    // into batches of batch_size that eval.ppl deals out over the ranks: the same windows and
    // masks at any world size with the same global batch. Each window's mask is fixed by its
    // index in the set.
    const int64_t B = p_.integer("batch_size");
    int64_t first = 0;
    for (const Batch& b : data::batches_from_windows(windows, B, p_.integer("seq_len"), max_batches * p_.context().world)) {
      out.push_back(finish(b, 0x7a11dull, first, 1));
      first += b.tokens.size(0);
    }
    return out;
  }
  std::string domain() const override { return p_.string("domain"); }
  int64_t tokens_per_batch() const override { return p_.integer("batch_size") * p_.integer("seq_len"); }
  // The default stream's position as a flat list; with stage_files, an object of them by
  // stage ("" = the default).
  Json state() const override {
    if (streams_.size() == 1) return streams_.at("")->state().to_json();
    Json j;
    for (const auto& [stage, s] : streams_) j[stage] = s->state().to_json();
    return j;
  }
  void restore(const Json& j) override {
    auto load = [](TextStream& s, const Json& a) { s.restore(data::Position::from_json(a, "data.text")); };
    if (j.is_array()) {
      SCION_CHECK(streams_.size() == 1, "data.text: the checkpoint holds one stream but stage_files asks for ",
                  streams_.size());
      return load(*streams_.at(""), j);
    }
    for (const auto& [stage, s] : streams_) {
      SCION_CHECK(j.contains(stage), "data.text: the checkpoint has no stream position for stage '", stage, "'");
      load(*s, j.at(stage));
    }
  }

 private:
  // Causal LM: targets are the next tokens. MLM (mlm_prob > 0): the inputs are corrupted and
  // the targets are the original tokens at the selected positions only.
  TensorMap finish(const Batch& b, uint64_t seed, int64_t first_row, int64_t row_step) const {
    if (mlm_.prob <= 0.f) return {{"tokens", b.tokens}, {"targets", b.targets}};
    data::MlmBatch m = data::mask_rows(b.tokens, mlm_, seed, first_row, row_step);
    return {{"tokens", m.inputs}, {"targets", m.targets}};
  }
  Params p_;
  std::shared_ptr<scion::Tokenizer> tok_;
  data::TokenizeFn tokenize_;
  std::map<std::string, std::unique_ptr<TextStream>> streams_;  // "" = files; else a stage's
  data::MlmConfig mlm_;
};

PluginEntry text_entry() {
  PluginEntry e;
  e.name = "data.text";
  e.kind = PluginKind::data;
  e.version = "1.0.0";
  e.description = "Streams text/JSON-lines files, tokenizes, packs fixed-length windows, shuffles with a seed";
  e.params = {{"files", ParamType::string_list, Json(), true, "training files (globs): .txt (blank-line documents) or .jsonl", true},
              {"stage_files", ParamType::table, Json(Json::object_t{}), false,
               "{ <stage> = [globs] }: files those stages read instead (each set keeps its own position)", true},
              {"valid_files", ParamType::string_list, Json(Json::array_t{}), false, "validation files (globs) for evaluators", true},
              int_param("seq_len", 128, "tokens per window").at_least(1),
              int_param("batch_size", 8, "windows per batch (per rank)").at_least(1),
              bool_param("shuffle", true, "shuffle file order per epoch and windows in a buffer"),
              int_param("shuffle_buffer", 1024, "windows held for shuffling (long documents need many: batches from one document are of one domain)").at_least(0),
              str_param("domain", "", "domain tag (e.g. news, bio) for per-domain metrics"),
              num_param("mlm_prob", 0.0, "BERT masking probability (0 = causal LM targets)").in_range(0, 1),
              int_param("mask_id", 103, "[MASK] id for MLM").at_least(0),
              int_list_param("never_mask", {0, 101, 102}, "ids never selected for masking ([PAD], [CLS], [SEP])"),
              node_param("tokenizer", PluginKind::tokenizer, "the tokenizer node").needed()};
  e.outputs = {{"tokens", "tokens:i64[{batch_size},{seq_len}]", false, "input ids [B, T]"},
               {"targets", "targets:i64[{batch_size},{seq_len}]", false, "target ids [B, T] (-100 = none)"}};
  // stage_files names stages and holds globs: what the schema cannot say, checked on the graph.
  e.check = [](const GraphView& g, const GraphNodeView& self) {
    std::vector<GraphProblem> out;
    std::vector<std::string> stages;
    for (const auto& s : g.stages) stages.push_back(s.name);
    const Json& by_stage = self.params.raw("stage_files");
    for (const auto& [stage, globs] : json_object(by_stage)) {
      const std::string at = "stage_files." + stage;
      if (std::find(stages.begin(), stages.end(), stage) == stages.end()) {
        out.push_back({at, "stage_files names stage '" + stage + "', which the graph does not have",
                       "its stages: " + join(stages)});
        continue;
      }
      bool strings = globs.is_array();
      if (strings)
        for (const Json& x : json_array(globs)) strings = strings && x.is_string();
      if (!strings) {
        out.push_back({at, "stage_files." + stage + " must be a list of files (globs)",
                       "stage_files = { " + stage + " = [\"data/domain/*.txt\"] }"});
        continue;
      }
      for (size_t i = 0; i < json_array(globs).size(); ++i) {
        const std::string glob = json_string(json_array(globs)[i]);
        try {
          files::expand({glob}, "data.text");
        } catch (const Error&) {
          out.push_back({at + "." + std::to_string(i), "stage_files." + stage + ": no file matches '" + glob + "'",
                         "paths are relative to the directory scion runs in, else to the graph's directory, else to Scion's data directory"});
        }
      }
    }
    // Buffers this machine cannot hold would be read until the system kills the process.
    for (const char* key : {"batch_size", "shuffle_buffer"}) {
      const double n = double(self.params.integer(key)), T = double(self.params.integer("seq_len"));
      const bool batch = std::string(key) == "batch_size";
      const std::string m = memory_problem(batch ? batch_bytes(n, T) : shuffle_buffer_bytes(n, T),
                                         std::string(batch ? "a batch" : "a shuffle buffer") + " of " +
                                             std::to_string(self.params.integer(key)) + " windows of " +
                                             std::to_string(self.params.integer("seq_len")) + " tokens");
      if (!m.empty()) out.push_back({key, m, batch ? "a smaller batch_size (it is per rank)" : "a smaller shuffle_buffer"});
    }
    // A folder matches a path parameter (data.domains' root is one) but holds no text itself.
    for (const char* key : {"files", "valid_files"}) {
      const auto globs = self.params.strings(key);
      for (size_t i = 0; i < globs.size(); ++i) {
        std::error_code ec;
        if (std::filesystem::is_directory(globs[i], ec))
          out.push_back({std::string(key) + "." + std::to_string(i),
                         std::string(key) + " of node '" + self.name + "' names the folder '" + globs[i] +
                             "', not a file of text",
                         "name the files inside it, e.g. \"" + globs[i] + "/*.txt\""});
      }
    }
    // Text too short for one window stops the run at its first batch (training files) or at
    // its first evaluation (valid_files), after the run directory exists: refused here.
    const GraphNodeView* tn = g.node(self.params.string("tokenizer"));
    const TokenizerFacts* tf = tn && tn->kind == PluginKind::tokenizer ? &tokenizer_facts(g, *tn) : nullptr;
    if (tf && tf->tokenizer) {
      const int64_t T = self.params.integer("seq_len");
      for (const char* key : {"files", "valid_files"}) {
        const auto globs = self.params.strings(key);
        if (!globs.empty() && !makes_a_window(globs, *tf->tokenizer, T))
          out.push_back({key, std::string(key) + " of node '" + self.name + "' hold fewer tokens than one window of " +
                                  std::to_string(T + 1) + " (seq_len + 1, tokenized by '" + tn->name + "')",
                         "give longer files, or a smaller seq_len"});
      }
      // MLM masking writes mask_id into the inputs: it must be an id of the tokenizer.
      if (self.params.number("mlm_prob") > 0 && self.params.integer("mask_id") >= tf->vocab())
        out.push_back({"mask_id", "mask_id " + std::to_string(self.params.integer("mask_id")) + " is not an id of tokenizer '" +
                                      tn->name + "' (" + std::to_string(tf->vocab()) + " ids)",
                       "the tokenizer's [MASK] id (103 in BERT's vocab.txt)"});
    }
    return out;
  };
  e.factory = [](const Params& p, const NodeResolver& r) { return std::make_shared<TextNode>(p, r); };
  return e;
}

class ShardsNode final : public DataSource {
 public:
  explicit ShardsNode(const Params& p) : p_(p) {
    for (const auto& f : files::expand(p.strings("files"), "data.shards"))
      shards_.push_back(std::make_unique<shards::ShardReader>(f));
    rank_ = p.context().rank;
    world_ = p.context().world;
    const int64_t need = p.integer("batch_size") * p.integer("seq_len") + 1;
    for (auto& s : shards_)
      SCION_CHECK(s->size() >= need, "data.shards: '", s->path(), "' holds ", s->size(), " tokens, fewer than one batch (",
                  need, ")");
  }
  // A step reads the span [pos, pos + world·n] of the shard, rank r the n tokens at
  // pos + r·n; every rank moves to the next shard at the same step (when the whole span no
  // longer fits), and `pos` (the checkpointed state) is the same on every rank and means the
  // same at any world size.
  TensorMap next(const StepContext&) override {
    const int64_t B = p_.integer("batch_size"), T = p_.integer("seq_len"), n = B * T;
    if (pos_ + n * world_ + 1 > shards_[size_t(shard_)]->size()) {  // next shard (wrapping), as llm.c's loader
      shard_ = (shard_ + 1) % int64_t(shards_.size());
      pos_ = 0;
    }
    const auto& s = *shards_[size_t(shard_)];
    SCION_CHECK(n * world_ + 1 <= s.size(), "data.shards: '", s.path(), "' holds ", s.size(), " tokens, fewer than one step of ",
                world_, " ranks (", n * world_ + 1, ")");
    const int64_t at = pos_ + rank_ * n;
    // Row r is the window of T + 1 tokens at at + r·T (consecutive rows share a token).
    Batch b = data::empty_batch(B, T);
    data::Window w(static_cast<size_t>(T + 1));
    for (int64_t r = 0; r < B; ++r) {
      for (int64_t t = 0; t <= T; ++t) w[size_t(t)] = int32_t(s[at + r * T + t]);
      data::put_row(b, r, w);
    }
    pos_ += n * world_;
    return {{"tokens", b.tokens}, {"targets", b.targets}};
  }
  int64_t tokens_per_batch() const override { return p_.integer("batch_size") * p_.integer("seq_len"); }
  Json state() const override {
    Json j;
    j["shard"] = Json(shard_);
    j["pos"] = Json(pos_);
    return j;
  }
  void restore(const Json& j) override {
    shard_ = json_int(j.at("shard"));
    pos_ = json_int(j.at("pos"));
  }

 private:
  Params p_;
  std::vector<std::unique_ptr<shards::ShardReader>> shards_;
  int64_t shard_ = 0, pos_ = 0, rank_ = 0, world_ = 1;
};

PluginEntry shards_entry() {
  PluginEntry e;
  e.name = "data.shards";
  e.kind = PluginKind::data;
  e.version = "1.0.0";
  e.description = "Pre-tokenized llm.c shards (uint16 or uint32 tokens), memory-mapped, read in order";
  e.params = {{"files", ParamType::string_list, Json(), true, "shard files (globs), written by `scion tokenize`", true},
              int_param("seq_len", 128, "tokens per row").at_least(1),
              int_param("batch_size", 8, "rows per batch (per rank)").at_least(1)};
  e.outputs = {{"tokens", "tokens:i64[{batch_size},{seq_len}]", false, "input ids [B, T]"},
               {"targets", "targets:i64[{batch_size},{seq_len}]", false, "next-token ids [B, T]"}};
  // Each shard's header and size, as the node's constructor checks them (a map of the header
  // only; no token is read).
  e.check = [](const GraphView&, const GraphNodeView& self) {
    std::vector<GraphProblem> out;
    std::vector<std::string> paths;
    try {
      paths = files::expand(self.params.strings("files"), "data.shards");
    } catch (const Error&) {
      return out;  // the schema's path check says so
    }
    const int64_t need = self.params.integer("batch_size") * self.params.integer("seq_len") + 1;
    for (const auto& f : paths) {
      try {
        shards::ShardReader r(f);
        if (r.size() < need)
          out.push_back({"files", "shard '" + f + "' holds " + std::to_string(r.size()) + " tokens, fewer than one batch (" +
                                      std::to_string(need) + " = batch_size * seq_len + 1)",
                         "a smaller batch_size or seq_len, or a longer shard (scion tokenize)"});
      } catch (const std::exception& e) {
        out.push_back({"files", e.what(), "shards are written by `scion tokenize` (llm.c's format)"});
      }
    }
    return out;
  };
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<ShardsNode>(p); };
  return e;
}

}  // namespace
}  // namespace scion::lm

using scion::lm::shards_entry;
using scion::lm::text_entry;
SCION_REGISTER_PLUGIN(text_entry)
SCION_REGISTER_PLUGIN(shards_entry)
