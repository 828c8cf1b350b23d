// data.segments: TRIME's training batches (consecutive segments or BM25 chains), with the
// document id of every position for loss.trime's long memory.
#include <algorithm>

#include "scion/data.h"
#include "scion/files.h"
#include "scion/plugin.h"
#include "segments.h"

namespace scion::memory {
namespace {

class SegmentsNode final : public DataSource {
 public:
  SegmentsNode(const Params& p, const NodeResolver& r) : p_(p) {
    tok_ = r.get<scion::Tokenizer>(p.string("tokenizer"));
    SCION_CHECK(tok_->eot_id() >= 0, "data.segments: the tokenizer has no end-of-text id to separate documents");
    auto t = tok_;
    tokenize_ = [t](std::string_view s) { return t->encode(s); };
    corpus_ = load_segments(files::expand(p.strings("files"), "data.segments"), tokenize_, tok_->eot_id(),
                            p.integer("seq_len"), p.integer("max_segments"));
    Bm25Options o;
    o.neighbours = p.integer("bm25_neighbours");
    o.k1 = float(p.number("bm25_k1"));
    o.b = float(p.number("bm25_b"));
    const SegmentOrder order = p.string("order") == "bm25" ? SegmentOrder::bm25 : SegmentOrder::consecutive;
    batcher_ = std::make_unique<SegmentBatcher>(
        corpus_, order, p.integer("batch_size"), p.context().seed,
        [t](std::span<const int32_t> ids) { return t->decode(ids); }, o);
  }
  TensorMap next(const StepContext&) override {
    const int64_t B = p_.integer("batch_size"), T = p_.integer("seq_len");
    data::Batch b = data::empty_batch(B, T);
    Tensor d = Tensor::empty({B, T}, DType::i64);
    const std::vector<int64_t> rows = batcher_->next();
    for (int64_t r = 0; r < B; ++r) {
      data::put_row(b, r, corpus_.windows[size_t(rows[size_t(r)])]);
      const auto& doc = corpus_.docs[size_t(rows[size_t(r)])];
      std::copy(doc.begin(), doc.begin() + T, d.data<int64_t>() + r * T);
    }
    return {{"tokens", b.tokens}, {"targets", b.targets}, {"docs", d}};
  }
  std::vector<TensorMap> validation(int64_t max_batches) override {
    std::vector<TensorMap> out;
    if (p_.strings("valid_files").empty()) return out;
    auto windows = data::TextStream::all_windows(files::expand(p_.strings("valid_files"), "data.segments"), tokenize_,
                                                 tok_->eot_id(), p_.integer("seq_len"));
    for (const data::Batch& b : data::batches_from_windows(windows, p_.integer("batch_size"), p_.integer("seq_len"), max_batches))
      out.push_back({{"tokens", b.tokens}, {"targets", b.targets}});
    return out;
  }
  int64_t tokens_per_batch() const override { return p_.integer("batch_size") * p_.integer("seq_len"); }
  Json state() const override { return data::Position(batcher_->state(), "data.segments").to_json(); }
  void restore(const Json& j) override { batcher_->restore(data::Position::from_json(j, "data.segments").values()); }

 private:
  Params p_;
  std::shared_ptr<scion::Tokenizer> tok_;
  data::TokenizeFn tokenize_;
  SegmentCorpus corpus_;
  std::unique_ptr<SegmentBatcher> batcher_;
};

PluginEntry segments_entry() {
  PluginEntry e;
  e.name = "data.segments";
  e.kind = PluginKind::data;
  e.version = "1.0.0";
  e.description = "TRIME's batches: consecutive segments of documents (long memory) or BM25 chains of similar "
                  "segments (external memory); seeded, resumable";
  e.params = {{"files", ParamType::string_list, Json(), true, "training files (globs): .txt (blank-line documents) or .jsonl", true},
              {"valid_files", ParamType::string_list, Json(Json::array_t{}), false, "validation files (globs) for evaluators", true},
              int_param("seq_len", 128, "tokens per segment").at_least(1),
              int_param("batch_size", 8, "segments per batch").at_least(1),
              str_param("order", "consecutive", "consecutive: rows are consecutive segments; bm25: a BM25 greedy chain")
                  .one_of({"consecutive", "bm25"}),
              int_param("max_segments", 0, "use only the first segments of the files (0 = all)").at_least(0),
              int_param("bm25_neighbours", 100, "bm25: results searched per chain step").at_least(1),
              num_param("bm25_k1", 0.9, "bm25: term-frequency saturation (Pyserini's default)").at_least(0),
              num_param("bm25_b", 0.4, "bm25: length normalisation (Pyserini's default)").in_range(0, 1),
              node_param("tokenizer", PluginKind::tokenizer, "the tokenizer node").needed()};
  e.outputs = {{"tokens", "tokens:i64[{batch_size},{seq_len}]", false, "input ids [B, T]"},
               {"targets", "targets:i64[{batch_size},{seq_len}]", false, "next-token ids [B, T]"},
               {"docs", "docs:i64[{batch_size},{seq_len}]", false, "document id of each position [B, T]"}};
  e.factory = [](const Params& p, const NodeResolver& r) { return std::make_shared<SegmentsNode>(p, r); };
  return e;
}

}  // namespace
}  // namespace scion::memory

using scion::memory::segments_entry;
SCION_REGISTER_PLUGIN(segments_entry)
