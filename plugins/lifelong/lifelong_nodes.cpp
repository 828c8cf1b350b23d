// The lifelong plugins: data.domains (ELLE's stream of domains with memories and replay),
// elle.expand (ELLE's expansion op) and eval.lifelong (per-domain perplexity, AP, AP+).
#include <algorithm>
#include <cmath>
#include <filesystem>

#include "domain_stream.h"
#include "elle_expand.h"
#include "lifelong_scores.h"
#include "scion/autograd.h"
#include "scion/data.h"
#include "scion/growth.h"
#include "scion/ops.h"
#include "scion/random.h"
#include "scion/sizes.h"

namespace scion::lifelong {
namespace {
namespace fs = std::filesystem;

std::string join(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
  return s;
}

// ---- data.domains ---------------------------------------------------------------------------
std::vector<std::string> domains_under(const std::string& root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec))
    if (e.is_directory() && fs::exists(e.path() / "train.txt") && fs::exists(e.path() / "valid.txt"))
      out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<GraphProblem> check_domains(const GraphView& g, const GraphNodeView& self) {
  std::vector<GraphProblem> out;
  const Params& p = self.params;
  const std::string root = p.string("root");
  const auto known = domains_under(root);
  const auto domains = p.strings("domains");
  if (domains.empty()) out.push_back({"domains", "the stream has no domain", "domains = [\"reference\", \"news\"]"});
  for (size_t i = 0; i < domains.size(); ++i) {
    const std::string& d = domains[i];
    if (std::find(known.begin(), known.end(), d) == known.end()) {
      out.push_back({"domains." + std::to_string(i), "unknown domain '" + d + "' (no " + root + "/" + d + "/train.txt and valid.txt)",
                     known.empty() ? "root = \"" + root + "\" holds no domain folder" : "the domains under " + root + ": " + join(known)});
      continue;
    }
    if (std::count(domains.begin(), domains.end(), d) > 1)
      out.push_back({"domains." + std::to_string(i), "domain '" + d + "' is listed twice", "list each domain once"});
    // Each domain is evaluated on its valid.txt at the end of its stage: one window of
    // seq_len + 1 tokens at least (files up to 256 KiB are tokenized; larger ones cannot be
    // that short), else the run fails at that evaluation, after the stage's training.
    {
      const fs::path valid = fs::path(root) / d / "valid.txt";
      std::error_code vec;
      const auto vbytes = fs::file_size(valid, vec);
      const int64_t T = p.integer("seq_len");
      bool short_text = !vec && 2 * vbytes + 1 < uintmax_t(T) + 1;
      if (!vec && !short_text && vbytes <= (uintmax_t(256) << 10) && g.tokenizer) {
        try {
          if (auto tok = g.tokenizer(p.string("tokenizer"))) {
            data::TokenizeFn fn = [&tok](std::string_view text) { return tok->encode(text); };
            short_text = data::TextStream::all_windows({valid.string()}, fn, tok->eot_id(), T).empty();
          }
        } catch (const std::exception&) {
          // unreadable here: the tokenizer's own check or the stream says what it is
        }
      }
      if (short_text)
        out.push_back({"domains." + std::to_string(i),
                       "domain '" + d + "': " + valid.string() + " holds fewer tokens than one window of " +
                           std::to_string(T + 1) + " (seq_len + 1); its evaluation would fail after the stage trains",
                       "give domain '" + d + "' a longer valid.txt, or a smaller seq_len"});
    }
    // A token is at least one byte of text (or one separator): more tokens than bytes is more
    // than the domain holds, whatever the tokenizer.
    std::error_code ec;
    const auto bytes = int64_t(fs::file_size(fs::path(root) / d / "train.txt", ec));
    if (!ec && p.integer("memory_tokens") > bytes)
      out.push_back({"memory_tokens", "a memory of " + std::to_string(p.integer("memory_tokens")) + " tokens is larger than domain '" +
                                          d + "' (" + std::to_string(bytes) + " bytes of training text)",
                     "set memory_tokens <= " + std::to_string(bytes) + " (ELLE keeps a sample of each domain, not all of it)"});
  }
  if (p.integer("memory_tokens") < p.integer("seq_len"))
    out.push_back({"memory_tokens", "a memory of " + std::to_string(p.integer("memory_tokens")) + " tokens holds no window of " +
                                        std::to_string(p.integer("seq_len")),
                   "set memory_tokens >= seq_len"});
  // Buffers this machine cannot hold would be read until the system kills the process.
  for (const char* key : {"batch_size", "shuffle_buffer"}) {
    const double n = double(p.integer(key)), T = double(p.integer("seq_len"));
    const bool batch = std::string(key) == "batch_size";
    const std::string m = memory_problem(batch ? batch_bytes(n, T) : shuffle_buffer_bytes(n, T),
                                       std::string(batch ? "a batch" : "a shuffle buffer") + " of " +
                                           std::to_string(p.integer(key)) + " windows of " +
                                           std::to_string(p.integer("seq_len")) + " tokens");
    if (!m.empty()) out.push_back({key, m, batch ? "a smaller batch_size (it is per rank)" : "a smaller shuffle_buffer"});
  }
  std::vector<std::string> stages, trained;
  for (const auto& s : g.stages) stages.push_back(s.name);
  const Json& sched = p.raw("schedule");
  for (const auto& [stage, what] : json_object(sched)) {
    const std::string at = "schedule." + stage;
    if (std::find(stages.begin(), stages.end(), stage) == stages.end()) {
      out.push_back({at, "the schedule names stage '" + stage + "', which the graph does not have", "its stages: " + join(stages)});
      continue;
    }
    if (!what.is_string()) {
      out.push_back({at, "schedule." + stage + " must be a domain name or \"warmup\"", stage + " = \"news\""});
      continue;
    }
    const std::string w = json_string(what);
    if (w != DomainStream::kWarmup && std::find(domains.begin(), domains.end(), w) == domains.end())
      out.push_back({at, "unknown domain '" + w + "' (not in domains)", "domains: " + join(domains) + ", or \"warmup\""});
  }
  // In stage order: each domain trained once; a warmup needs an earlier domain's memory.
  for (const auto& s : g.stages) {
    const bool runs = s.data.empty() || std::find(s.data.begin(), s.data.end(), self.name) != s.data.end();
    if (!sched.contains(s.name) || !sched.at(s.name).is_string()) {
      if (runs)
        out.push_back({"schedule", "stage '" + s.name + "' reads this stream but the schedule does not say what it reads",
                       "add " + s.name + " = \"<domain>\" (or \"warmup\") to schedule"});
      continue;
    }
    const std::string w = json_string(sched.at(s.name));
    if (w == DomainStream::kWarmup) {
      if (trained.empty())
        out.push_back({"schedule." + s.name, "warmup stage '" + s.name + "' comes before any domain has a memory",
                       "a function-recovering warmup follows a domain's stage"});
    } else if (std::find(trained.begin(), trained.end(), w) != trained.end()) {
      out.push_back({"schedule." + s.name, "domain '" + w + "' is trained in two stages", "one stage per domain"});
    } else {
      trained.push_back(w);
    }
  }
  if (!p.string("evaluator").empty()) {
    const GraphNodeView* e = g.node(p.string("evaluator"));
    if (!e)
      out.push_back({"evaluator", "no node '" + p.string("evaluator") + "' in the graph", "name the eval.lifelong node"});
    else if (e->plugin != "eval.lifelong")
      out.push_back({"evaluator", "evaluator '" + e->name + "' is " + e->plugin + ", not eval.lifelong",
                     "name the eval.lifelong node whose per-domain losses measure forgetting"});
  }
  return out;
}

PluginEntry domains_entry() {
  PluginEntry e;
  e.name = "data.domains";
  e.kind = PluginKind::data;
  e.version = "1.0.0";
  e.description = "ELLE's stream of domains: one stage per domain, a seeded memory per domain, replay of earlier "
                  "domains by measured forgetting, warmup stages on memories only";
  e.params = {{"domains", ParamType::string_list, Json(), true, "the domains in stream order (folders <root>/<domain>/{train,valid}.txt)"},
              str_param("root", "data/corpus", "folder holding one sub-folder per domain").file(),
              {"schedule", ParamType::table, Json(), true, "{ <stage> = \"<domain>\" | \"warmup\" }: what each stage reads"},
              int_param("memory_tokens", 16384, "tokens of each domain kept as its memory when its stage ends").at_least(1),
              num_param("replay", 0.1, "share of every batch's rows replayed from earlier domains' memories").in_range(0, 1),
              // A name, not a node reference: the evaluator reads this node, so a reference would be a cycle.
              str_param("evaluator", "", "the eval.lifelong node whose per-domain losses weight replay (\"\": uniform weights)"),
              int_param("seq_len", 128, "tokens per window").at_least(1),
              int_param("batch_size", 8, "windows per batch (per rank)").at_least(1),
              bool_param("shuffle", true, "shuffle each domain's documents and windows"),
              int_param("shuffle_buffer", 1024, "windows held for shuffling").at_least(0),
              num_param("mlm_prob", 0.0, "BERT masking probability (0 = causal LM targets)").in_range(0, 1),
              int_param("mask_id", 103, "[MASK] id for MLM").at_least(0),
              int_list_param("never_mask", {0, 101, 102}, "ids never selected for masking"),
              node_param("tokenizer", PluginKind::tokenizer, "the tokenizer node").needed()};
  e.outputs = {{"tokens", "tokens:i64[{batch_size},{seq_len}]", false, "input ids [B, T]"},
               {"targets", "targets:i64[{batch_size},{seq_len}]", false, "target ids [B, T] (-100 = none)"},
               {"domain", "domain:i64[{batch_size}]", false, "each row's domain, an index into domains [B]"}};
  e.check = check_domains;
  e.factory = [](const Params& p, const NodeResolver& r) { return std::make_shared<DomainStream>(p, r); };
  return e;
}

// ---- elle.expand ----------------------------------------------------------------------------
class ExpandOp final : public Op {
 public:
  explicit ExpandOp(const Params& p) {
    o_.base_layers = p.integer("base_layers");
    o_.width = p.integer("width");
    o_.layers = p.integer("layers");
    o_.uniform = p.boolean("uniform");
    o_.last_first = p.string("choose") == "last";
    o_.noise = float(p.number("noise"));
    o_.depth_noise = float(p.number("depth_noise"));
    o_.lineage_seed = uint64_t(p.integer("lineage_seed"));
    o_.seed = p.context().seed;
  }
  void apply(Model& t, const StepContext& ctx) override {
    TransformerModel& m = surgery::transformer(t, "elle.expand");
    const Architecture a = m.architecture();
    SCION_CHECK((o_.width > 0 && o_.width != a.width) || (o_.layers > 0 && o_.layers != a.layers()), "elle.expand: width ",
                o_.width, " and layers ", o_.layers, " do not grow the model (width ", a.width, ", ", a.layers(),
                " layers; hint: set width or layers above the current size)");
    const int64_t width = o_.width > 0 ? o_.width : a.width, ffn = a.ffn.empty() ? 0 : a.ffn[0];
    growth::check_fits(a, width, checked_mul(ffn, width, "the grown FFN") / std::max<int64_t>(a.width, 1),
                       o_.layers > 0 ? o_.layers : a.layers(),
                       "elle.expand");
    expand(m, o_);
  }
  // ELLE restarts the optimizer at every expansion (--reset-optimizer).
  std::string state_source(const std::string&) const override { return ""; }

 private:
  ExpandOptions o_;
};

PluginEntry expand_entry() {
  PluginEntry e;
  e.name = "elle.expand";
  e.kind = PluginKind::op;
  e.version = "1.0.0";
  e.description = "ELLE's expansion: FPI width growth (heads at a fixed head size, FFN ratio kept) and copies inserted "
                  "after their source layers by ELLE's lineage rule; restarts the optimizer";
  e.params = {int_param("base_layers", 0, "depth the model had when the stream started (the lineage's originals)").at_least(1).needed(),
              int_param("width", 0, "new hidden size, a multiple of the head size (0 = unchanged)").at_least(0),
              int_param("layers", 0, "new depth (0 = unchanged)").at_least(0),
              bool_param("uniform", false, "left-to-right width map (exact when the width doubles) instead of ELLE's random map"),
              str_param("choose", "random", "random | last: which layers are doubled first").one_of({"random", "last"}),
              num_param("noise", 0.0, "std of ELLE's N(0, noise) symmetry-breaking noise on the duplicated units' divided "
                        "weights, zero-sum over each unit's copies so the function is kept (ELLE's scripts: 0.01)").at_least(0),
              num_param("depth_noise", 0.0, "std of N(0, depth_noise) added to every tensor of an inserted layer copy "
                        "(ELLE adds none)").at_least(0),
              int_param("lineage_seed", 0, "seed of the doubling order; the same for every expansion of one model")};
  // FPI keeps the FFN/width ratio.
  e.check = [](const GraphView& g, const GraphNodeView& self) { return growth::check_target(g, self, true); };
  e.factory = [](const Params& p, const NodeResolver&) { return std::make_shared<ExpandOp>(p); };
  return e;
}

// ---- eval.lifelong --------------------------------------------------------------------------
constexpr int64_t kIgnoreIndex = -100;

class LifelongEval final : public Evaluator {
 public:
  LifelongEval(const Params& p, const NodeResolver& r) : max_batches_(p.integer("max_batches")) {
    model_ = r.get<Model>(p.string("model"));
    stream_ = r.get<DomainStream>(p.string("stream"));
    if (p.has("prompt")) prompt_ = r.get<PromptInjector>(p.string("prompt"));
  }
  std::map<std::string, double> evaluate(const StepContext& ctx) override {
    const auto seen = stream_->seen(ctx.stage), earlier = stream_->earlier(ctx.stage);
    std::map<std::string, double> out, ppl;
    for (const auto& d : seen) {
      const double l = mean_loss(stream_->validation_of(d, max_batches_), ctx);
      out[d + "/loss"] = l;
      out[d + "/ppl"] = ppl[d] = std::exp(l);
    }
    const std::string own = stream_->reads(ctx.stage);
    if (!own.empty() && own != DomainStream::kWarmup) end_[own] = ppl.at(own);  // the last one is the stage's end
    if (!seen.empty()) {
      const LifelongScores s = lifelong_scores(seen, earlier, ppl, end_);
      out["ap"] = s.ap;
      if (s.has_ap_plus) out["ap_plus"] = s.ap_plus;
      for (const auto& d : earlier) out[d + "/forgetting"] = ppl.at(d) - end_.at(d);
    }
    for (const auto& d : stream_->memory_order()) {
      out["replay/" + d + "/weight"] = stream_->sampler().weight(d);
      out["replay/" + d + "/rows"] = double(stream_->sampler().replayed(d));
    }
    return out;
  }
  Json state() const override {
    Json j(Json::object_t{});
    for (const auto& [d, v] : end_) j[d] = Json(v);
    return j;
  }
  void restore(const Json& j) override {
    end_.clear();
    for (const auto& [d, v] : json_object(j)) end_[d] = json_number(v);
  }

 private:
  // Mean cross-entropy over every counted target, through the prompt when there is one.
  double mean_loss(const std::vector<TensorMap>& batches, const StepContext& ctx) {
    NoGradGuard ng;
    const bool was = model_->module().training();
    model_->module().set_training(false);
    double total = 0;
    int64_t count = 0;
    for (const TensorMap& raw : batches) {
      const TensorMap b = prompt_ ? prompt_->inject(raw, ctx) : raw;
      TensorMap in = b;
      const Tensor targets = b.count("targets") ? b.at("targets") : raw.at("targets");
      int64_t n = 0;
      for (int64_t t : targets.to_vector_i64()) n += t != kIgnoreIndex;
      total += double(ops::cross_entropy(model_->forward(in, ctx).at("logits"), targets, kIgnoreIndex).item()) * double(n);
      count += n;
    }
    model_->module().set_training(was);
    return count ? total / double(count) : 0.0;
  }
  int64_t max_batches_;
  std::shared_ptr<Model> model_;
  std::shared_ptr<DomainStream> stream_;
  std::shared_ptr<PromptInjector> prompt_;
  std::map<std::string, double> end_;  // perplexity at the end of each domain's own stage
};

std::vector<GraphProblem> check_eval(const GraphView& g, const GraphNodeView& self) {
  std::vector<GraphProblem> out;
  const GraphNodeView* s = g.node(self.params.string("stream"));
  if (!s) return out;
  if (s->plugin != "data.domains") {
    out.push_back({"stream", "node '" + s->name + "' is " + s->plugin + ", not data.domains",
                   "eval.lifelong follows a data.domains stream"});
    return out;
  }
  // AP+ compares with each domain's perplexity at the end of its own stage: every stage the
  // stream schedules must evaluate with this node.
  const Json& sched = s->params.raw("schedule");
  for (size_t i = 0; i < g.stages.size(); ++i) {
    const auto& st = g.stages[i];
    if (!sched.is_object() || !sched.contains(st.name)) continue;
    const bool evaluates = st.eval_every > 0 && std::find(st.evaluators.begin(), st.evaluators.end(), self.name) != st.evaluators.end();
    if (!evaluates)
      out.push_back({"eval", "stage '" + st.name + "' of stream '" + s->name + "' does not evaluate with '" + self.name +
                                 "': AP+ needs each domain's perplexity at the end of its stage",
                     "eval = { every = N, evaluators = [\"" + self.name + "\"] }", int(i)});
  }
  return out;
}

PluginEntry eval_entry() {
  PluginEntry e;
  e.name = "eval.lifelong";
  e.kind = PluginKind::evaluator;
  e.version = "1.0.0";
  e.description = "lifelong evaluation: validation perplexity on every domain seen so far, AP (their mean) and AP+ "
                  "(mean increase since each domain's stage ended), the replay weights";
  e.params = {node_param("model", PluginKind::model, "the model evaluated").needed(),
              node_param("stream", PluginKind::data, "the data.domains stream (its domains and their validation files)").needed(),
              node_param("prompt", PluginKind::prompt, "a prompt node the validation batches pass through (prompt.domain)"),
              int_param("max_batches", 8, "validation batches per domain (at most)").at_least(1)};
  e.check = check_eval;
  e.factory = [](const Params& p, const NodeResolver& r) { return std::make_shared<LifelongEval>(p, r); };
  return e;
}

}  // namespace
}  // namespace scion::lifelong

using scion::lifelong::domains_entry;
using scion::lifelong::eval_entry;
using scion::lifelong::expand_entry;
SCION_REGISTER_PLUGIN(domains_entry)
SCION_REGISTER_PLUGIN(expand_entry)
SCION_REGISTER_PLUGIN(eval_entry)
