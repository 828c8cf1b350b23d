// memory.datastore (writes a kNN-LM datastore of a model over a corpus) and eval.knnlm
// (perplexity per domain with TRIME's memories and/or kNN-LM over a datastore).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "datastore.h"
#include "knnlm.h"
#include "scion/autograd.h"
#include "scion/files.h"
#include "scion/ops.h"
#include "scion/plugin.h"
#include "segments.h"

namespace scion::memory {
namespace {

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

// Inputs of windows [from, from + n) of a corpus: tokens [n, T] (and targets, docs).
struct WindowBatch {
  Tensor tokens;
  std::vector<int64_t> targets, docs;
};
WindowBatch window_batch(const SegmentCorpus& c, int64_t from, int64_t n) {
  const int64_t T = c.seq_len;
  WindowBatch b;
  b.tokens = Tensor::empty({n, T}, DType::i64);
  b.targets.resize(size_t(n * T));
  b.docs.resize(size_t(n * T));
  for (int64_t r = 0; r < n; ++r)
    for (int64_t t = 0; t < T; ++t) {
      const auto& w = c.windows[size_t(from + r)];
      b.tokens.data<int64_t>()[r * T + t] = w[size_t(t)];
      b.targets[size_t(r * T + t)] = w[size_t(t) + 1];
      b.docs[size_t(r * T + t)] = c.docs[size_t(from + r)][size_t(t)];
    }
  return b;
}

// The model's logits and memory representation, f32 contiguous on the CPU.
std::pair<Tensor, Tensor> run_model(Model& m, const Tensor& tokens, const StepContext& ctx, const char* who) {
  TensorMap out = m.forward({{"tokens", tokens.to(ctx.device)}}, ctx);
  auto reps = out.find("ffn_input");
  SCION_CHECK(reps != out.end(), who, ": the model has no ffn_input output (model.gpt has one)");
  return {out.at("logits").to(Device::cpu()).contiguous(), reps->second.to(Device::cpu()).contiguous()};
}

data::TokenizeFn tokenize_with(const std::shared_ptr<scion::Tokenizer>& t) {
  return [t](std::string_view s) { return t->encode(s); };
}

// ---- memory.datastore ------------------------------------------------------------------------
class DatastoreNode final : public Evaluator {
 public:
  DatastoreNode(const Params& p, const NodeResolver& r) : p_(p) {
    model_ = r.get<Model>(p.string("model"));
    tok_ = r.get<scion::Tokenizer>(p.string("tokenizer"));
  }
  std::map<std::string, double> evaluate(const StepContext& ctx) override {
    NoGradGuard ng;
    const double t0 = now_s();
    const int64_t T = p_.integer("seq_len"), B = p_.integer("batch_size"), max_tokens = p_.integer("max_tokens");
    const SegmentCorpus c = sliding_windows(
        load_segments(files::expand(p_.strings("files"), "memory.datastore"), tokenize_with(tok_), tok_->eot_id(), T,
                      max_tokens > 0 ? (max_tokens + T - 1) / T : 0),
        p_.integer("stride"));
    SCION_CHECK(!c.windows.empty(), "memory.datastore: the files hold less than one window of ", T, " tokens");
    const bool was = model_->module().training();
    model_->module().set_training(false);
    DatastoreInfo info;
    info.fingerprint = model_fingerprint(model_->module());
    info.model_config = model_->config();
    info.seq_len = T;
    info.index = p_.string("index");
    info.metric = p_.string("metric");
    const int64_t W = int64_t(c.windows.size());
    int64_t total = 0;  // keys: every scored position, at most max_tokens
    for (int64_t i = 0; i < W; ++i) total += T - c.scored_from(size_t(i));
    if (max_tokens > 0) total = std::min(total, max_tokens);
    std::unique_ptr<DatastoreWriter> w;
    const bool bar = p_.boolean("progress");
    double last_draw = -1e9;
    for (int64_t from = 0; from < W && (!w || w->size() < total); from += B) {
      const int64_t n = std::min(B, W - from);
      WindowBatch b = window_batch(c, from, n);
      auto [logits, reps] = run_model(*model_, b.tokens, ctx, "memory.datastore");
      const int64_t C = reps.size(-1);
      if (!w) {
        info.dim = C;
        w = std::make_unique<DatastoreWriter>(p_.string("path"), info);
      }
      // A sliding window's context positions were stored by an earlier window.
      for (int64_t r = 0; r < n; ++r) {
        const int64_t first = c.scored_from(size_t(from + r)), keep = std::min(T - first, total - w->size());
        if (keep <= 0) break;
        std::vector<int32_t> vals(b.targets.begin() + r * T + first, b.targets.begin() + r * T + first + keep);
        w->add(reps.data<float>() + (r * T + first) * C, vals.data(), keep);
      }
      // At most four redraws a second (a log file gets few lines), and always the last.
      if (bar && (now_s() - last_draw >= 0.25 || w->size() == total)) {
        last_draw = now_s();
        const double el = now_s() - t0;
        const int64_t done = w->size(), width = 30, fill = done * width / total;
        std::fprintf(stderr, "\rmemory.datastore: [%s%s] %lld/%lld keys %3d%% %.0f keys/s", std::string(size_t(fill), '#').c_str(),
                     std::string(size_t(width - fill), '.').c_str(), static_cast<long long>(done),
                     static_cast<long long>(total), int(100 * done / total), double(done) / std::max(el, 1e-9));
        std::fflush(stderr);
      }
    }
    model_->module().set_training(was);
    const double t1 = now_s();
    if (bar) std::fprintf(stderr, "\nmemory.datastore: building the %s index over %lld keys\n", info.index.c_str(),
                          static_cast<long long>(w->size()));
    const DatastoreInfo done = w->finish();
    const double t2 = now_s();
    if (bar) std::fprintf(stderr, "memory.datastore: wrote %s (%.1f s)\n", p_.string("path").c_str(), t2 - t0);
    return {{"keys", double(done.size)},
            {"dim", double(done.dim)},
            {"build_s", t2 - t0},
            {"encode_s", t1 - t0},
            {"index_s", t2 - t1},
            {"keys_per_s", double(done.size) / std::max(t1 - t0, 1e-9)}};
  }

 private:
  Params p_;
  std::shared_ptr<Model> model_;
  std::shared_ptr<scion::Tokenizer> tok_;
};

PluginEntry datastore_entry() {
  PluginEntry e;
  e.name = "memory.datastore";
  e.kind = PluginKind::evaluator;
  e.version = "1.0.0";
  e.description = "writes a kNN-LM datastore (a model's ffn_input keys, next-token values, FAISS index) over a corpus, "
                  "atomically, with a progress bar";
  e.params = {node_param("model", PluginKind::model, "the model whose representations are the keys").needed(),
              node_param("tokenizer", PluginKind::tokenizer, "tokenizes the files").needed(),
              {"files", ParamType::string_list, Json(), true, "the corpus (globs), usually the training files", true},
              str_param("path", "", "the datastore folder to write (replaced atomically)").needed(),
              int_param("seq_len", 128, "tokens per window (each window's positions see only the window)").at_least(1),
              int_param("batch_size", 8, "windows per forward pass").at_least(1),
              int_param("stride", 0, "sliding windows: each window advances by stride tokens and stores only the "
                                     "positions no earlier window stored, so each key sees at least seq_len − stride "
                                     "tokens of context (0: non-overlapping windows)").at_least(0),
              int_param("max_tokens", 0, "keys to store at most, from the start of the files (0 = all)").at_least(0),
              str_param("index", "Flat", "FAISS index_factory description: Flat (exact), IVF<n>,Flat, IVF<n>,PQ<m>"),
              str_param("metric", "ip", "ip: inner product (TRIME); l2: squared distance (kNN-LM)").one_of({"ip", "l2"}),
              bool_param("progress", true, "draw a progress bar on stderr")};
  // What is at `path` is replaced by the build: refused before anything runs unless Scion wrote it.
  e.check = [](const GraphView&, const GraphNodeView& self) {
    std::vector<GraphProblem> out;
    if (std::string problem = replace_problem(self.params.string("path")); !problem.empty())
      out.push_back({"path", problem, kReplaceHint});
    return out;
  };
  e.factory = [](const Params& p, const NodeResolver& r) { return std::make_shared<DatastoreNode>(p, r); };
  return e;
}

// ---- eval.knnlm --------------------------------------------------------------------------------
EvalMemory memory_of(const std::string& s) {
  if (s == "local") return EvalMemory::local;
  if (s == "long") return EvalMemory::long_;
  return EvalMemory::none;
}

class KnnLmNode final : public Evaluator {
 public:
  KnnLmNode(const Params& p, const NodeResolver& r) : p_(p), memory_(memory_of(p.string("memory"))) {
    model_ = r.get<Model>(p.string("model"));
    auto tok = r.get<scion::Tokenizer>(p.string("tokenizer"));
    const int64_t T = p.integer("seq_len"), keep = p.integer("batch_size") * p.integer("max_batches");
    for (const auto& [name, glob] : json_object(p.raw("domains"))) {
      // A contiguous prefix of each domain's windows: the long memory needs consecutive text.
      SegmentCorpus c = sliding_windows(
          load_segments(files::expand({json_string(glob)}, "eval.knnlm"), tokenize_with(tok), tok->eot_id(), T, keep),
          p.integer("stride"));
      SCION_CHECK(!c.windows.empty(), "eval.knnlm: domain '", name, "' (", json_string(glob),
                  ") is shorter than one window of ", T, " tokens");
      domains_.push_back({name, std::move(c)});
    }
    SCION_CHECK(!domains_.empty(), "eval.knnlm: name the domains to evaluate: domains = { name = \"glob\" }");
  }

  std::map<std::string, double> evaluate(const StepContext& ctx) override {
    NoGradGuard ng;
    std::unique_ptr<Datastore> store;
    const std::string path = p_.string("datastore");
    const int64_t k = p_.integer("k");
    const double lambda = p_.number("lambda"), knn_temp = p_.number("knn_temp");
    if (!path.empty()) {
      store = Datastore::open(path, model_fingerprint(model_->module()));
      store->set_nprobe(p_.integer("nprobe"));
      SCION_CHECK(k <= store->size(), "eval.knnlm: k = ", k, " neighbours, but the datastore '", path, "' holds ",
                  store->size(), " keys; hint: k <= ", store->size());
    }
    const bool was = model_->module().training();
    model_->module().set_training(false);
    std::map<std::string, double> out;
    double sum_lm = 0, sum_mem = 0, sum_final = 0, search_s = 0;
    int64_t queries = 0;
    const int64_t B = p_.integer("batch_size");
    for (auto& [name, c] : domains_) {
      const int64_t T = c.seq_len, W = int64_t(c.windows.size());
      MemoryScorer mem(memory_, p_.integer("mem_size"), float(p_.number("temperature")), p_.boolean("same_document"));
      MemoryScorer plain(EvalMemory::none, 0, 1.f);
      double nll_lm = 0, nll_mem = 0, nll_final = 0;
      int64_t count = 0;
      std::vector<float> sims;
      std::vector<int64_t> ids;
      std::vector<int32_t> vals;
      for (int64_t from = 0; from < W; from += B) {
        const int64_t n = std::min(B, W - from);
        WindowBatch b = window_batch(c, from, n);
        auto [logits, reps] = run_model(*model_, b.tokens, ctx, "eval.knnlm");
        const int64_t V = logits.size(-1), C = reps.size(-1);
        if (store) {
          SCION_CHECK(C == store->info().dim, "eval.knnlm: the model's representations have ", C,
                      " dimensions, the datastore's keys ", store->info().dim);
          sims.resize(size_t(n * T * k));
          ids.resize(size_t(n * T * k));
          const double s0 = now_s();
          // TRIME's similarity q·k/√d for inner products; l2 keeps minus the squared distance.
          store->search(reps.data<float>(), n * T, k, sims.data(), ids.data(), p_.boolean("exact_l2"));
          search_s += now_s() - s0;
          queries += n * T;
          // The reference divides q·k by --interp-temp alone; knn_sqrt_d also divides by √d
          // (TRIME's training similarity), so knn_temp = interp_temp / √d.
          if (store->info().metric == "ip" && p_.boolean("knn_sqrt_d"))
            for (float& s : sims) s /= std::sqrt(float(C));
          vals.resize(ids.size());
          for (size_t i = 0; i < ids.size(); ++i) vals[i] = ids[i] < 0 ? -1 : store->value(ids[i]);
        }
        for (int64_t r = 0; r < n; ++r) {
          const float* L = logits.data<float>() + r * T * V;
          const float* R = reps.data<float>() + r * T * C;
          const int64_t* y = b.targets.data() + r * T;
          const int64_t* d = b.docs.data() + r * T;
          const int64_t first = c.scored_from(size_t(from + r));
          const auto lm = plain.score_window(L, R, y, d, T, V, C, first);
          const auto jm = memory_ == EvalMemory::none ? lm : mem.score_window(L, R, y, d, T, V, C, first);
          for (int64_t t = first; t < T; ++t) {
            double final_lp = jm[size_t(t)];
            if (store) {
              const size_t at = size_t((r * T + t) * k);
              final_lp = interpolate(jm[size_t(t)], knn_log_prob(sims.data() + at, vals.data() + at, k, y[t], knn_temp),
                                     lambda);
            }
            nll_lm -= lm[size_t(t)];
            nll_mem -= jm[size_t(t)];
            nll_final -= final_lp;
            ++count;
          }
        }
      }
      const double n = double(std::max<int64_t>(1, count));
      out[name + "/lm_ppl"] = std::exp(nll_lm / n);
      if (memory_ != EvalMemory::none) out[name + "/memory_ppl"] = std::exp(nll_mem / n);
      out[name + "/ppl"] = std::exp(nll_final / n);
      out[name + "/loss"] = nll_final / n;
      sum_lm += nll_lm / n, sum_mem += nll_mem / n, sum_final += nll_final / n;
    }
    model_->module().set_training(was);
    const double D = double(domains_.size());
    out["lm_ppl"] = std::exp(sum_lm / D);
    if (memory_ != EvalMemory::none) out["memory_ppl"] = std::exp(sum_mem / D);
    out["ppl"] = std::exp(sum_final / D);
    out["loss"] = sum_final / D;
    if (store) out["knn_queries_per_s"] = double(queries) / std::max(search_s, 1e-9);
    return out;
  }

 private:
  Params p_;
  EvalMemory memory_;
  std::shared_ptr<Model> model_;
  std::vector<std::pair<std::string, SegmentCorpus>> domains_;
};

PluginEntry knnlm_entry() {
  PluginEntry e;
  e.name = "eval.knnlm";
  e.kind = PluginKind::evaluator;
  e.version = "1.0.0";
  e.description = "perplexity per domain with TRIME's memories (local, long FIFO) and kNN-LM interpolation over a "
                  "datastore (FAISS)";
  e.params = {node_param("model", PluginKind::model, "the model evaluated (any model with an ffn_input port)").needed(),
              node_param("tokenizer", PluginKind::tokenizer, "tokenizes the domains' files").needed(),
              {"domains", ParamType::table, Json(Json::object_t{}), true, "domain = \"validation glob\"", true},
              int_param("seq_len", 128, "tokens per window").at_least(1),
              int_param("batch_size", 8, "windows per forward pass").at_least(1),
              int_param("max_batches", 50, "tokens per domain: those of the first batch_size × max_batches windows of "
                                            "seq_len, in order").at_least(1),
              int_param("stride", 0, "sliding-window evaluation: windows of seq_len advance by stride tokens and score "
                                     "only the positions no earlier window scored, so each scored token sees at least "
                                     "seq_len − stride tokens of context (0: non-overlapping windows)").at_least(0),
              str_param("memory", "none", "none: the LM alone; local: joint normalisation over the window's earlier "
                                          "tokens; long: also a FIFO of earlier windows' positions")
                  .one_of({"none", "local", "long"}),
              bool_param("same_document", false, "long: only FIFO entries of the query's document are memory (the "
                                                 "reference's memory has no document test)"),
              int_param("mem_size", 1024, "long: positions the FIFO holds").at_least(0),
              num_param("temperature", 1.0, "divides the memory similarities (the reference's --softmax-temp)").above(0),
              str_param("datastore", "", "a memory.datastore folder for kNN-LM (empty: none)"),
              int_param("k", 64, "neighbours retrieved per position").at_least(1),
              num_param("lambda", 0.25, "kNN-LM weight: p = λ·p_kNN + (1 − λ)·p_model").in_range(0, 1),
              num_param("knn_temp", 1.0, "divides the neighbours' similarities in p_kNN (TRIME's --interp-temp)").above(0),
              bool_param("knn_sqrt_d", false, "ip: divide q·k by √d as well before knn_temp (then knn_temp = "
                                              "interp_temp / √d); false: q·k / knn_temp, the reference's form"),
              bool_param("exact_l2", true, "l2: recompute the neighbours' distances from the stored keys (kNN-LM's "
                                           "default); false: the index's approximate distances (IVF/PQ)"),
              int_param("nprobe", 16, "IVF datastores: inverted lists searched per query").at_least(1)};
  // A datastore that exists at validation can be checked against k before anything runs.
  e.check = [](const GraphView& g, const GraphNodeView& self) {
    std::vector<GraphProblem> out;
    const Params& p = self.params;
    for (const auto& [name, glob] : json_object(p.raw("domains"))) {
      if (!glob.is_string()) {
        out.push_back({"domains." + name, "domain '" + name + "' must be a glob string", name + " = \"data/x/valid.txt\""});
        continue;
      }
      try {
        files::expand({json_string(glob)}, "eval.knnlm");
      } catch (const Error&) {
        out.push_back({"domains." + name, "domain '" + name + "': no file matches '" + json_string(glob) + "'",
                       "paths are relative to the directory scion runs in"});
      }
    }
    DatastoreInfo info;
    const std::string path = p.string("datastore");
    bool built_here = false;  // a memory.datastore node of this graph writes it first
    for (const auto& n : g.nodes)
      if (n.plugin == "memory.datastore" && n.params.string("path") == path) built_here = true;
    bool found = false;
    try {
      found = !path.empty() && !built_here && read_manifest(path, info);
    } catch (const Error& e) {
      out.push_back({"datastore", e.what(), "rebuild it with a memory.datastore node"});
    }
    if (found && p.integer("k") > info.size)
      out.push_back({"k", "k = " + std::to_string(p.integer("k")) + " neighbours, but the datastore '" + path + "' holds " +
                              std::to_string(info.size) + " keys",
                     "k <= " + std::to_string(info.size)});
    return out;
  };
  e.factory = [](const Params& p, const NodeResolver& r) { return std::make_shared<KnnLmNode>(p, r); };
  return e;
}

}  // namespace
}  // namespace scion::memory

using scion::memory::datastore_entry;
using scion::memory::knnlm_entry;
SCION_REGISTER_PLUGIN(datastore_entry)
SCION_REGISTER_PLUGIN(knnlm_entry)
