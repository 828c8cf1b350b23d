// loss.lm, loss.mlm and eval.ppl.
#include <cmath>
#include <set>

#include "graph_facts.h"
#include "scion/data.h"
#include "scion/files.h"
#include "scion/ops.h"
#include "scion/plugin.h"

namespace scion::lm {
namespace {

// Targets with this id do not count, in loss.lm, loss.mlm and eval.ppl alike (the data nodes
// write it where there is no target: MLM's unmasked positions; PyTorch's default too).
constexpr int64_t kIgnoreIndex = -100;

// The cross-entropy of a model's logits, or, with `hidden` and `head`, of the model's LM head
// applied inside the loss by ops::linear_cross_entropy: the same loss without the [B·T, V]
// logits (the model then does not make them, as nothing else reads them).
class CrossEntropyNode final : public Loss {
 public:
  CrossEntropyNode(const Params& p, const NodeResolver& r, bool mlm) : ignore_(p.integer("ignore_index")), mlm_(mlm) {
    if (p.has("head") && !p.string("head").empty()) head_ = r.get<Model>(p.string("head"));
  }
  Tensor compute(const TensorMap& in, const StepContext& ctx, std::map<std::string, double>& metrics) override {
    const Tensor& targets = in.at("targets");
    // MLM over ranks: each rank masks a different number of tokens, so the mean over ranks of
    // the ranks' means is not the mean over the global batch. Scaling a rank's mean by
    // world · n_rank / n_global makes the ranks' average (gradients and logged loss alike) the
    // global mean over masked tokens, as one process would compute it.
    double scale = 1;
    if (mlm_) {
      int64_t n = 0;
      for (int64_t t : targets.to_vector_i64()) n += t != ignore_;
      double counts[2] = {double(n), double(targets.numel())};
      if (ctx.world > 1 && ctx.allreduce_sum) {
        ctx.allreduce_sum(counts, 2);
        scale = counts[0] > 0 ? double(n) * double(ctx.world) / counts[0] : 0.0;
      }
      metrics["masked_fraction"] = counts[0] / std::max(1.0, counts[1]);
    }
    Tensor loss;
    if (!head_) {
      loss = ops::cross_entropy(in.at("logits"), targets, ignore_);
    } else {
      const Model::LmHead h = head_->lm_head(in.at("hidden"));
      SCION_CHECK(h.input.defined(), mlm_ ? "loss.mlm" : "loss.lm", ": the head model has no LM head to fuse (wire logits instead)");
      loss = ops::linear_cross_entropy(h.input, h.weight, h.bias, targets, ignore_);
    }
    return scale == 1 ? loss : ops::mul_scalar(loss, float(scale));
  }

 private:
  int64_t ignore_;
  bool mlm_;
  std::shared_ptr<Model> head_;
};

// Either logits, or hidden + head from one model: refused here, not at the first update.
std::vector<GraphProblem> check_ce(const GraphView&, const GraphNodeView& self) {
  const bool logits = self.inputs.count("logits") > 0, hidden = self.inputs.count("hidden") > 0;
  const std::string head = self.params.has("head") ? self.params.string("head") : "";
  const std::string fused = "hidden = \"<model>.hidden\" and head = \"<model>\"";
  if (logits && (hidden || !head.empty()))
    return {{hidden ? "hidden" : "head", "give logits, or hidden and head (the fused LM head), not both",
             "keep logits = \"" + self.inputs.at("logits") + "\" alone, or replace it by " + fused}};
  if (logits) return {};
  if (!hidden)
    return {{"", "no input to score: wire logits, or hidden and head", "logits = \"<model>.logits\", or " + fused}};
  if (hidden && head.empty())
    return {{"hidden", "hidden needs head = \"<model>\": the model whose LM head the loss applies",
             "head = \"" + self.inputs.at("hidden").substr(0, self.inputs.at("hidden").find('.')) + "\""}};
  const std::string from = self.inputs.at("hidden").substr(0, self.inputs.at("hidden").find('.'));
  if (from != head)
    return {{"head", "hidden comes from '" + from + "' but head names '" + head + "'", "head = \"" + from + "\""}};
  return {};
}

PluginEntry ce_entry(bool mlm) {
  PluginEntry e;
  e.name = mlm ? "loss.mlm" : "loss.lm";
  e.kind = PluginKind::loss;
  e.version = "1.1.0";
  e.description = mlm ? "masked-LM cross-entropy over the positions data.text masked (mlm_prob; 80/10/10)"
                      : "next-token cross-entropy (fused softmax), ignoring padding targets";
  e.params = {{"ignore_index", ParamType::integer, Json(kIgnoreIndex), false, "target id that does not count"},
              node_param("head", PluginKind::model,
                         "the model whose LM head this loss applies to `hidden` itself, fused with the cross-entropy: "
                         "the [B, T, V] logits are never stored")};
  e.inputs = {{"logits", "logits:f32[B,T,V]", true, "model logits [B, T, V] (or hidden + head)"},
              {"hidden", "hidden:f32[B,T,C]", true, "the head model's hidden output [B, T, C] (with head)"},
              {"targets", "targets:i64[B,T]", false, "target ids [B, T]"}};
  e.check = check_ce;
  e.factory = [mlm](const Params& p, const NodeResolver& r) { return std::make_shared<CrossEntropyNode>(p, r, mlm); };
  return e;
}
PluginEntry lm_entry() { return ce_entry(false); }
PluginEntry mlm_entry() { return ce_entry(true); }

// Perplexity of a model on the validation split of each data node: exp(mean cross-entropy)
// over every validation window (causal), or over the masked positions (MLM data).
class PplNode final : public Evaluator {
 public:
  PplNode(const Params& p, const NodeResolver& r) : max_batches_(p.integer("max_batches")), ignore_(p.integer("ignore_index")) {
    model_ = r.get<Model>(p.string("model"));
    if (p.has("teacher") && !p.string("teacher").empty()) teacher_ = r.get<Model>(p.string("teacher"));
    for (const auto& d : p.strings("data")) data_.push_back({d, r.get<DataSource>(d)});
    // Per-domain validation files: domain = "glob", tokenized once with `tokenizer`.
    const Json& domains = p.raw("domains");
    if (domains.is_object() && !json_object(domains).empty()) {
      SCION_CHECK(p.has("tokenizer"), "eval.ppl: domains = {...} needs tokenizer = \"<tokenizer node>\"");
      auto tok = r.get<scion::Tokenizer>(p.string("tokenizer"));
      const int64_t T = p.integer("seq_len"), B = p.integer("batch_size"), stride = p.integer("stride");
      data::TokenizeFn fn = [tok](std::string_view s) { return tok->encode(s); };
      for (const auto& [name, glob] : json_object(domains)) {
        auto windows = data::TextStream::all_windows(files::expand({json_string(glob)}, "eval.ppl"), fn, tok->eot_id(), T);
        std::vector<TensorMap> batches;
        if (stride > 0 && stride < T) {
          batches = sliding_batches(windows, B, T, stride);
        } else {
          for (auto& [x, y] : data::batches_from_windows(windows, B, T, max_batches_)) batches.push_back({{"tokens", x}, {"targets", y}});
        }
        SCION_CHECK(!batches.empty(), "eval.ppl: domain '", name, "' (", json_string(glob), ") is shorter than one window");
        fixed_.push_back({name, std::move(batches)});
      }
    }
    SCION_CHECK(!data_.empty() || !fixed_.empty(), "eval.ppl: name data nodes (data = [...]) or domains = {...}");
  }
  std::map<std::string, double> evaluate(const StepContext& ctx) override {
    std::vector<std::pair<std::string, std::vector<TensorMap>>> sets = fixed_;
    for (auto& [name, src] : data_) {
      auto batches = src->validation(max_batches_);
      SCION_CHECK(!batches.empty(), "eval.ppl: data node '", name, "' has no validation batches (set valid_files)");
      sets.push_back({src->domain().empty() ? name : src->domain(), std::move(batches)});
    }
    std::map<std::string, double> out;
    double sum_model = 0, sum_teacher = 0;
    int domains = 0;
    for (auto& [key, batches] : sets) {
      const double l = mean_loss(*model_, batches, ctx, ignore_);
      out[key + "/loss"] = l;
      out[key + "/ppl"] = std::exp(l);
      sum_model += l;
      if (teacher_) {
        const double lt = mean_loss(*teacher_, batches, ctx, ignore_);
        out[key + "/teacher_loss"] = lt;
        sum_teacher += lt;
      }
      ++domains;
    }
    out["loss"] = sum_model / domains;
    out["ppl"] = std::exp(out["loss"]);
    if (teacher_) out["teacher_loss"] = sum_teacher / domains;
    return out;
  }

 private:
  // Sliding-window batches over the text of the first batch_size × max_batches windows: a
  // window's context positions (scored by an earlier window) get the ignore index.
  std::vector<TensorMap> sliding_batches(std::vector<data::Window> windows, int64_t B, int64_t T, int64_t stride) const {
    if (int64_t(windows.size()) > B * max_batches_) windows.resize(size_t(B * max_batches_));
    const auto slides = data::sliding_windows(windows, T, stride);
    std::vector<TensorMap> out;
    for (size_t i = 0; i < slides.size(); i += size_t(B)) {
      const int64_t rows = std::min<int64_t>(B, int64_t(slides.size() - i));
      data::Batch b = data::empty_batch(rows, T);
      for (int64_t r = 0; r < rows; ++r) data::put_row(b, r, slides[i + size_t(r)].tokens);
      int64_t* y = b.targets.data<int64_t>();
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t t = 0; t < slides[i + size_t(r)].first_scored; ++t) y[r * T + t] = ignore_;
      out.push_back({{"tokens", b.tokens}, {"targets", b.targets}});
    }
    return out;
  }

  // Mean cross-entropy over every counted target: the batch means weighted by their counts,
  // with the same ignore index for the count and the loss.
  static double mean_loss(Model& m, const std::vector<TensorMap>& batches, const StepContext& ctx, int64_t ignore) {
    NoGradGuard ng;
    const bool was = m.module().training();
    m.module().set_training(false);
    // Over ranks, each takes every world-th batch and the sums are added up: the same mean
    // as one rank's (to rounding), in 1/world of the time.
    double total = 0;
    int64_t count = 0;
    for (size_t i = 0; i < batches.size(); ++i) {
      if (int64_t(i) % ctx.world != ctx.rank) continue;
      const TensorMap& b = batches[i];
      // The LM head fused with the loss where the model has one: no [B, T, V] logits.
      StepContext hidden_only = ctx;
      const std::set<std::string> want{"hidden"};
      hidden_only.wanted_outputs = &want;
      TensorMap out = m.forward(b, hidden_only);
      const Tensor& targets = b.at("targets");
      int64_t n = 0;
      for (int64_t t : targets.to_vector_i64()) n += t != ignore;
      Tensor loss;
      if (auto it = out.find("logits"); it != out.end()) {
        loss = ops::cross_entropy(it->second, targets, ignore);
      } else {
        const Model::LmHead h = m.lm_head(out.at("hidden"));
        SCION_CHECK(h.input.defined(), "eval.ppl: the model made no logits and has no LM head");
        loss = ops::linear_cross_entropy(h.input, h.weight, h.bias, targets, ignore);
      }
      total += double(loss.item()) * double(n);
      count += n;
    }
    m.module().set_training(was);
    if (ctx.allreduce_sum) {
      double v[2] = {total, double(count)};
      ctx.allreduce_sum(v, 2);
      total = v[0], count = int64_t(v[1]);
    }
    return count ? total / double(count) : 0.0;
  }
  int64_t max_batches_, ignore_;
  std::shared_ptr<Model> model_, teacher_;
  std::vector<std::pair<std::string, std::shared_ptr<DataSource>>> data_;
  std::vector<std::pair<std::string, std::vector<TensorMap>>> fixed_;
};

PluginEntry ppl_entry() {
  PluginEntry e;
  e.name = "eval.ppl";
  e.kind = PluginKind::evaluator;
  e.version = "1.0.0";
  e.description = "validation loss and perplexity of a model on each data node's validation split";
  e.params = {node_param("model", PluginKind::model, "the model evaluated").needed(),
              node_param("teacher", PluginKind::model, "a second model scored on the same batches (teacher_loss)"),
              node_param("tokenizer", PluginKind::tokenizer, "tokenizes the domains' files"),
              node_list_param("data", PluginKind::data, "data nodes whose valid_files are evaluated (one domain each)"),
              {"domains", ParamType::table, Json(Json::object_t{}), false, "domain = \"validation glob\" (needs tokenizer)", true},
              int_param("seq_len", 128, "window length for domains").at_least(1),
              int_param("batch_size", 8, "windows per batch for domains").at_least(1),
              int_param("stride", 0, "domains: sliding-window evaluation over the text of the first batch_size × "
                                     "max_batches windows: windows of seq_len advance by stride tokens and score only the "
                                     "positions no earlier window scored, so each scored token sees at least seq_len − "
                                     "stride tokens of context (0: non-overlapping windows)").at_least(0),
              int_param("max_batches", 50, "validation batches per domain (at most); for data nodes, global batches "
                                            "(their batch_size × world windows), so the set is the same at any world size")
                  .at_least(1),
              {"ignore_index", ParamType::integer, Json(kIgnoreIndex), false, "target id that does not count (loss.lm's default)"}};
  // What the constructor and the first evaluation would refuse, refused at validation.
  e.check = [](const GraphView& g, const GraphNodeView& self) {
    std::vector<GraphProblem> out;
    const Params& p = self.params;
    const Json& domains = p.raw("domains");
    const bool has_domains = !json_object(domains).empty();
    if (has_domains && !p.has("tokenizer"))
      out.push_back({"domains", "domains = {...} needs tokenizer = \"<tokenizer node>\"",
                     "add tokenizer = \"<the tokenizer node>\" to this node"});
    for (const auto& [name, glob] : json_object(domains)) {
      if (!glob.is_string()) {
        out.push_back({"domains." + name, "domain '" + name + "' must be a glob string", name + " = \"data/x/valid.txt\""});
        continue;
      }
      try {
        files::expand({json_string(glob)}, "eval.ppl");
      } catch (const Error&) {
        out.push_back({"domains." + name, "domain '" + name + "': no file matches '" + json_string(glob) + "'",
                       "paths are relative to the directory scion runs in, else to the graph's directory, else to Scion's data directory"});
      }
    }
    const auto data = p.strings("data");
    if (data.empty() && !has_domains)
      out.push_back({"", "name data nodes (data = [...]) or domains = {...} to evaluate on",
                     "data = [\"<data node with valid_files>\"] or domains = { name = \"glob\" }"});
    // Windows longer than the model's positions, and domain files too short for one window,
    // would stop the run at its first evaluation (possibly after all the training).
    const GraphNodeView* model = p.has("model") ? g.node(p.string("model")) : nullptr;
    const int64_t context = model ? model_context(*model) : -1;
    if (has_domains && context > 0 && p.integer("seq_len") > context)
      out.push_back({"seq_len", "seq_len " + std::to_string(p.integer("seq_len")) + " is longer than the context of model '" +
                                    model->name + "' (" + std::to_string(context) + ")",
                     "seq_len <= " + std::to_string(context)});
    const GraphNodeView* tn = p.has("tokenizer") ? g.node(p.string("tokenizer")) : nullptr;
    if (has_domains && tn && tn->kind == PluginKind::tokenizer && tokenizer_facts(g, *tn).tokenizer)
      for (const auto& [name, glob] : json_object(domains))
        if (glob.is_string() && !makes_a_window({json_string(glob)}, *tokenizer_facts(g, *tn).tokenizer, p.integer("seq_len")))
          out.push_back({"domains." + name, "domain '" + name + "' (" + json_string(glob) +
                                                ") holds fewer tokens than one window of " + std::to_string(p.integer("seq_len") + 1),
                         "a longer file, or a smaller seq_len"});
    for (size_t i = 0; i < p.strings("data").size(); ++i) {
      const GraphNodeView* d = g.node(p.strings("data")[i]);
      if (d && context > 0 && d->params.all().contains("seq_len") && d->params.raw("seq_len").is_number_integer() &&
          d->params.integer("seq_len") > context)
        out.push_back({"data." + std::to_string(i), "data node '" + d->name + "' has windows of " +
                                                         std::to_string(d->params.integer("seq_len")) +
                                                         " tokens, longer than the context of model '" + model->name +
                                                         "' (" + std::to_string(context) + ")",
                       "seq_len of '" + d->name + "' <= " + std::to_string(context)});
    }
    // A data node without a validation split gives no batches: the first evaluation would stop
    // the run. Data plugins that take valid_files say so by that parameter.
    for (size_t i = 0; i < data.size(); ++i) {
      const GraphNodeView* d = g.node(data[i]);
      if (!d) continue;
      const bool declares = d->params.all().contains("valid_files");
      if ((declares && d->params.strings("valid_files").empty()) || d->plugin == "data.shards")
        out.push_back({"data." + std::to_string(i), "data node '" + data[i] + "' (" + d->plugin + ") has no validation files",
                       declares ? "set valid_files on node '" + data[i] + "'" : "evaluate on a data.text node with valid_files, or use domains"});
    }
    return out;
  };
  e.factory = [](const Params& p, const NodeResolver& r) { return std::make_shared<PplNode>(p, r); };
  return e;
}

}  // namespace
}  // namespace scion::lm

using scion::lm::lm_entry;
using scion::lm::mlm_entry;
using scion::lm::ppl_entry;
SCION_REGISTER_PLUGIN(lm_entry)
SCION_REGISTER_PLUGIN(mlm_entry)
SCION_REGISTER_PLUGIN(ppl_entry)
