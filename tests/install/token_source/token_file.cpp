// data.token_file: training batches from a file of token ids (whitespace-separated
// integers), made only of the SDK's data blocks (scion/data.h): the ids are one token stream,
// cut into windows (data::TokenWindows), sharded over ranks (data::RankShard), batched
// (data::make_batch, data::batches_from_windows) and resumed from a data::Position. The
// stream loops over the file. A third-party source written as the in-tree ones are.
#include <fstream>

#include "scion/data.h"
#include "scion/plugin.h"

namespace {
using namespace scion;

std::vector<int32_t> read_ids(const std::string& path) {
  std::ifstream in(path);
  SCION_CHECK(in.good(), "data.token_file: cannot open '", path, "'");
  std::vector<int32_t> ids;
  for (int64_t id; in >> id;) ids.push_back(int32_t(id));
  SCION_CHECK(in.eof(), "data.token_file: '", path, "' holds something other than integers after ", ids.size(), " ids");
  return ids;
}

class TokenFile final : public DataSource {
 public:
  explicit TokenFile(const Params& p)
      : ids_(read_ids(p.string("file"))),
        seq_len_(p.integer("seq_len")),
        batch_(p.integer("batch_size")),
        windows_(seq_len_),
        shard_(p.context().rank, p.context().world, "data.token_file") {
    SCION_CHECK(int64_t(ids_.size()) > seq_len_, "data.token_file: '", p.string("file"), "' holds ", ids_.size(),
                " ids, fewer than one window of ", seq_len_ + 1);
  }
  TensorMap next(const StepContext&) override {
    data::Batch b = data::make_batch(shard_.take(batch_, [this] { return next_window(); }), seq_len_);
    return {{"tokens", b.tokens}, {"targets", b.targets}};
  }
  // Every window of the file once, in order.
  std::vector<TensorMap> validation(int64_t max_batches) override {
    data::TokenWindows w(seq_len_);
    std::vector<data::Window> all;
    for (int32_t id : ids_) {
      w.push(id);
      if (w.ready()) all.push_back(w.pop());
    }
    std::vector<TensorMap> out;
    for (const data::Batch& b : data::batches_from_windows(all, batch_, seq_len_, max_batches))
      out.push_back({{"tokens", b.tokens}, {"targets", b.targets}});
    return out;
  }
  int64_t tokens_per_batch() const override { return batch_ * seq_len_; }
  Json state() const override {
    data::Position p("data.token_file");
    p.put(cursor_);
    shard_.save(p);
    windows_.save(p);
    return p.to_json();
  }
  void restore(const Json& j) override {
    data::Position p = data::Position::from_json(j, "data.token_file");
    cursor_ = p.take();
    shard_.load(p);
    windows_.load(p);
  }

 private:
  data::Window next_window() {
    while (!windows_.ready()) {
      windows_.push(ids_[size_t(cursor_)]);
      cursor_ = (cursor_ + 1) % int64_t(ids_.size());
    }
    return windows_.pop();
  }
  std::vector<int32_t> ids_;
  int64_t seq_len_, batch_;
  int64_t cursor_ = 0;  // the next id of the file to read
  data::TokenWindows windows_;
  data::RankShard shard_;
};

PluginEntry token_file_entry() {
  PluginEntry e;
  e.name = "data.token_file";
  e.kind = PluginKind::data;
  e.version = "0.1.0";
  e.description = "Token ids from a text file, cut into windows with the SDK's data blocks (a third-party data source)";
  e.params = {str_param("file", "", "a file of whitespace-separated token ids").needed().file(),
              int_param("seq_len", 16, "tokens per window").at_least(1),
              int_param("batch_size", 2, "windows per batch (per rank)").at_least(1)};
  e.outputs = {{"tokens", "tokens:i64[{batch_size},{seq_len}]", false, "input ids [B, T]"},
               {"targets", "targets:i64[{batch_size},{seq_len}]", false, "next-token ids [B, T]"}};
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<TokenFile>(p); };
  return e;
}
}  // namespace

SCION_REGISTER_PLUGIN(token_file_entry)
SCION_PLUGIN_LIBRARY()
