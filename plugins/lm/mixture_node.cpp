// data.mixture: several domains' text streams mixed window by window with sampling weights,
// optionally moved during training by Sheared-LLaMA's dynamic batch loading (domain_weights.h):
// at each evaluation of the named evaluator, the domains whose validation loss is furthest
// above its reference get drawn more.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>

#include "domain_weights.h"
#include "graph_facts.h"
#include "scion/data.h"
#include "scion/files.h"
#include "scion/plugin.h"
#include "scion/random.h"
#include "scion/reported_values.h"

namespace scion::lm {
namespace {

using data::Window;

std::vector<std::string> globs_of(const Json& v) {
  if (v.is_string()) return {json_string(v)};
  std::vector<std::string> out;
  if (v.is_array())
    for (const Json& g : json_array(v))
      if (g.is_string()) out.push_back(json_string(g));
  return out;
}

// The per-domain validation losses of the last evaluation in a run's metrics.jsonl that has
// all of them ("<evaluator>/<domain>/loss"): a reference model measured on the same domains.
std::map<std::string, double> losses_of_run(const std::string& run, const std::string& evaluator,
                                            const std::vector<std::string>& domains) {
  const std::string path = (std::filesystem::path(run) / "metrics.jsonl").string();
  std::ifstream f(path);
  SCION_CHECK(f.good(), "data.mixture: reference_run '", run, "' has no metrics.jsonl (", path, ")");
  std::map<std::string, double> last;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty()) continue;
    const Json j = json_parse(line, path);
    std::map<std::string, double> got;
    for (const auto& d : domains) {
      const std::string key = evaluator + "/" + d + "/loss";
      if (j.contains(key) && j.at(key).is_number()) got[d] = json_number(j.at(key));
    }
    if (got.size() == domains.size()) last = std::move(got);
  }
  SCION_CHECK(!last.empty(), "data.mixture: no evaluation in ", path, " has the loss of every domain (keys '", evaluator,
              "/<domain>/loss'); hint: evaluate the reference model with eval.ppl's domains = {...} named as here");
  return last;
}

class MixtureNode final : public DataSource, public ReportsValues {
 public:
  MixtureNode(const Params& p, const NodeResolver& r) : p_(p), shard_(p.context().rank, p.context().world, "data.mixture") {
    tok_ = r.get<scion::Tokenizer>(p.string("tokenizer"));
    SCION_CHECK(tok_->eot_id() >= 0, "data.mixture: the tokenizer has no end-of-text id to separate documents");
    auto t = tok_;
    const data::TokenizeFn tokenize = [t](std::string_view s) { return t->encode(s); };
    const Json& weights = p.raw("weights");
    for (const auto& [name, globs] : json_object(p.raw("domains"))) {
      data::TextStreamConfig c;
      c.files = globs_of(globs);
      c.seq_len = p.integer("seq_len");
      c.batch_size = 1;
      c.seed = derive_seed(p.context().seed, hash_name("domain:" + name));
      c.shuffle = p.boolean("shuffle");
      c.shuffle_buffer = p.integer("shuffle_buffer");
      // Not sharded: every rank reads every domain's stream alike and keeps its share of the
      // mixed windows (shard_), so ranks stay at one position and a run resumes on any world size.
      names_.push_back(name);
      streams_.push_back(std::make_unique<data::TextStream>(c, tokenize, tok_->eot_id()));
      weights_.push_back(weights.is_object() && weights.contains(name) ? json_number(weights.at(name)) : 1.0);
    }
    SCION_CHECK(!names_.empty(), "data.mixture: domains = {} names no domain");
    normalize(weights_);
    evaluator_ = p.string("evaluator");
    dyn_.eta = p.number("eta"), dyn_.smoothing = p.number("smoothing"), dyn_.clip = p.boolean("clip_excess");
    if (!evaluator_.empty()) {
      std::map<std::string, double> ref;
      if (!p.string("reference_run").empty()) ref = losses_of_run(p.string("reference_run"), evaluator_, names_);
      for (const auto& [name, v] : json_object(p.raw("reference"))) ref[name] = json_number(v);
      for (const auto& d : names_) {
        SCION_CHECK(ref.count(d), "data.mixture: no reference loss for domain '", d, "'");
        reference_.push_back(ref.at(d));
      }
    }
  }

  TensorMap next(const StepContext&) override {
    const int64_t B = p_.integer("batch_size"), T = p_.integer("seq_len");
    // The step's global windows, drawn in order: window g comes from domain draw_domain(g);
    // shard_ keeps this rank's rows (row j is window j·world + rank).
    std::vector<int64_t> drawn_domains;
    std::vector<Window> rows = shard_.take(B, [&] {
      const int64_t d = draw_domain(weights_, derive_seed(p_.context().seed, 0x6d1c7ull), uint64_t(windows_++));
      drawn_domains.push_back(d);
      return streams_[size_t(d)]->draw();
    });
    data::Batch b = data::make_batch(rows, T);
    Tensor domain = Tensor::empty({B}, DType::i64);
    for (int64_t j = 0; j < B; ++j)
      domain.data<int64_t>()[j] = drawn_domains[size_t(j * shard_.world() + shard_.rank())];
    return {{"tokens", b.tokens}, {"targets", b.targets}, {"domain", domain}};
  }

  // Dynamic batch loading: every evaluation of `evaluator` moves the weights (Algorithm 1).
  void observe(const std::map<std::string, double>& metrics) override {
    if (evaluator_.empty()) return;
    std::vector<double> loss;
    for (const auto& d : names_) {
      auto it = metrics.find(evaluator_ + "/" + d + "/loss");
      if (it == metrics.end()) return;  // another evaluator's results (validation checks that this one has every domain)
      loss.push_back(it->second);
    }
    weights_ = update_domain_weights(weights_, loss, reference_, dyn_);
    ++updates_;
  }

  std::map<std::string, double> reported_values() const override {
    std::map<std::string, double> out;
    for (size_t i = 0; i < names_.size(); ++i) out["weight/" + names_[i]] = weights_[i];
    return out;
  }

  int64_t tokens_per_batch() const override { return p_.integer("batch_size") * p_.integer("seq_len"); }

  // The weights (exactly, as their bit patterns), the windows drawn and every domain's stream.
  Json state() const override {
    Json j;
    Json w = Json::array();
    for (double x : weights_) w.push_back(Json(x));
    j["weights"] = w;
    j["windows"] = Json(windows_);
    j["updates"] = Json(updates_);
    data::Position sp("data.mixture");
    shard_.save(sp);
    j["shard"] = sp.to_json();
    for (size_t i = 0; i < names_.size(); ++i) j["streams"][names_[i]] = streams_[i]->state().to_json();
    return j;
  }
  void restore(const Json& j) override {
    SCION_CHECK(j.is_object() && j.contains("weights") && j.contains("streams"),
                "data.mixture: the checkpoint holds no mixture position (was it written by another data source?)");
    const auto& w = json_array(j.at("weights"));
    SCION_CHECK(w.size() == names_.size(), "data.mixture: the checkpoint has ", w.size(), " domain weights, the graph ",
                names_.size(), " domains");
    for (size_t i = 0; i < w.size(); ++i) weights_[i] = json_number(w[i]);
    windows_ = json_int(j.at("windows"));
    updates_ = json_int(j.at("updates"));
    data::Position sp = data::Position::from_json(j.at("shard"), "data.mixture");
    shard_.load(sp);
    for (size_t i = 0; i < names_.size(); ++i) {
      SCION_CHECK(j.at("streams").contains(names_[i]), "data.mixture: the checkpoint has no stream position for domain '",
                  names_[i], "'");
      streams_[i]->restore(data::Position::from_json(j.at("streams").at(names_[i]), "data.mixture"));
    }
  }

 private:
  static void normalize(std::vector<double>& w) {
    double s = 0;
    for (double x : w) s += x;
    for (double& x : w) x /= s;
  }

  Params p_;
  std::shared_ptr<scion::Tokenizer> tok_;
  std::vector<std::string> names_;
  std::vector<std::unique_ptr<data::TextStream>> streams_;
  std::vector<double> weights_, reference_;
  std::string evaluator_;
  DynamicLoading dyn_;
  data::RankShard shard_;
  int64_t windows_ = 0, updates_ = 0;
};

std::vector<std::string> domain_names(const Params& p) {
  std::vector<std::string> out;
  for (const auto& [name, v] : json_object(p.raw("domains"))) out.push_back(name);
  return out;
}

// What the schema cannot say: the tables' keys name domains, weights are positive, the
// evaluator scores every domain, every domain has a reference loss.
std::vector<GraphProblem> check(const GraphView& g, const GraphNodeView& self) {
  std::vector<GraphProblem> out;
  const Params& p = self.params;
  const std::vector<std::string> names = domain_names(p);
  auto has = [&](const std::string& d) { return std::find(names.begin(), names.end(), d) != names.end(); };
  std::string listed;
  for (const auto& d : names) listed += (listed.empty() ? "" : ", ") + d;
  if (names.empty()) out.push_back({"domains", "domains = {} names no domain", "domains = { news = [\"data/corpus/news/train.txt\"], ... }"});
  for (const auto& [name, globs] : json_object(p.raw("domains"))) {
    const std::vector<std::string> gl = globs_of(globs);
    if (gl.empty() || !(globs.is_string() || gl.size() == json_array(globs).size())) {
      out.push_back({"domains." + name, "domain '" + name + "' must name its training files (a glob or a list of globs)",
                     name + " = [\"data/corpus/" + name + "/train.txt\"]"});
      continue;
    }
    for (const auto& glob : gl) try {
        files::expand({glob}, "data.mixture");
      } catch (const Error&) {
        out.push_back({"domains." + name, "domain '" + name + "': no file matches '" + glob + "'",
                       "paths are relative to the directory scion runs in, else to the graph's directory, else to Scion's data directory"});
      }
  }
  for (const auto& [name, w] : json_object(p.raw("weights"))) {
    if (!has(name))
      out.push_back({"weights." + name, "weights names domain '" + name + "', which domains does not have", "its domains: " + listed});
    else if (!w.is_number() || !(json_number(w) > 0) || !std::isfinite(json_number(w)))
      out.push_back({"weights." + name, "the weight of domain '" + name + "' must be a positive number",
                     "weights are relative (normalised to sum to 1)"});
  }
  for (const auto& [name, v] : json_object(p.raw("reference"))) {
    if (!has(name))
      out.push_back({"reference." + name, "a reference loss for domain '" + name + "', which domains does not have",
                     "its domains: " + listed});
    else if (!v.is_number() || !std::isfinite(json_number(v)))
      out.push_back({"reference." + name, "the reference loss of domain '" + name + "' must be a number", "a loss in nats"});
  }
  const std::string ev = p.string("evaluator");
  if (ev.empty()) {
    if (!json_object(p.raw("reference")).empty() || !p.string("reference_run").empty())
      out.push_back({"evaluator", "reference losses are given but no evaluator measures the domains' losses",
                     "evaluator = \"<an eval.ppl node with domains = {...}>\" turns on dynamic batch loading"});
    return out;
  }
  const GraphNodeView* e = g.node(ev);
  if (!e || e->kind != PluginKind::evaluator) {
    out.push_back({"evaluator", "evaluator '" + ev + "' is not an evaluator node of this graph",
                   "an eval.ppl node whose domains = {...} names the mixture's domains"});
    return out;
  }
  const Json& scored = e->params.has("domains") ? e->params.raw("domains") : Json();
  for (const auto& d : names)
    if (!scored.is_object() || !scored.contains(d))
      out.push_back({"evaluator", "evaluator '" + ev + "' does not score domain '" + d + "' (no '" + ev + "/" + d + "/loss')",
                     "give " + ev + " domains = { " + d + " = \"<its validation file>\", ... }"});
  const std::string run = p.string("reference_run");
  std::error_code ec;
  if (!run.empty() && !std::filesystem::exists(std::filesystem::path(run) / "metrics.jsonl", ec)) {
    out.push_back({"reference_run", "reference_run '" + run + "' holds no metrics.jsonl",
                   "a run directory of the reference model, evaluated with the same domains"});
  } else if (!run.empty()) {
    // What the node reads when it is made: refused here, before a run directory is touched.
    try {
      losses_of_run(run, ev, names);
    } catch (const Error& e) {
      out.push_back({"reference_run", e.what(), "evaluate the reference model with " + ev + "'s domains = {...}"});
    }
  }
  if (run.empty())
    for (const auto& d : names)
      if (!p.raw("reference").contains(d))
        out.push_back({"reference", "no reference loss for domain '" + d + "'",
                       "reference = { " + d + " = <loss> , ... }, or reference_run = \"<a run that evaluated the domains>\""});
  if (!g.stages.empty()) {
    bool evaluated = false;
    for (const auto& s : g.stages)
      evaluated = evaluated || (s.eval_every > 0 && std::find(s.evaluators.begin(), s.evaluators.end(), ev) != s.evaluators.end());
    if (!evaluated)
      out.push_back({"evaluator", "no stage evaluates '" + ev + "', so the domain weights would never move",
                     "eval = { every = 50, evaluators = [\"" + ev + "\"] } in the stages that train on the mixture"});
  }
  return out;
}

PluginEntry mixture_entry() {
  PluginEntry e;
  e.name = "data.mixture";
  e.kind = PluginKind::data;
  e.version = "1.0.0";
  e.description = "Mixes domains' text window by window with sampling weights; dynamic batch loading (Sheared-LLaMA) moves them";
  e.params = {{"domains", ParamType::table, Json(), true, "{ <domain> = [globs] }: each domain's training files", true},
              {"weights", ParamType::table, Json(Json::object_t{}), false, "{ <domain> = w }: initial sampling weights (relative; default equal)"},
              {"reference", ParamType::table, Json(Json::object_t{}), false, "{ <domain> = loss }: reference validation losses (nats)"},
              str_param("reference_run", "", "a run whose last evaluation gives the reference losses (overridden per domain by reference)"),
              str_param("evaluator", "", "the eval.ppl node (with domains = {...}) whose losses move the weights; empty = fixed weights"),
              num_param("eta", 1.0, "step size on the excess loss").at_least(0),
              num_param("smoothing", 1e-4, "c in w ← (1 − c)·w + c/k after each update").in_range(0, 1),
              bool_param("clip_excess", true, "Δ = max(loss − reference, 0) (Algorithm 1); false: the reference code's Δ = loss − reference"),
              int_param("seq_len", 128, "tokens per window").at_least(1),
              int_param("batch_size", 8, "windows per batch (per rank)").at_least(1),
              bool_param("shuffle", true, "shuffle each domain's files and windows (in a buffer)"),
              int_param("shuffle_buffer", 1024, "windows held for shuffling, per domain").at_least(0),
              node_param("tokenizer", PluginKind::tokenizer, "the tokenizer node").needed()};
  e.outputs = {{"tokens", "tokens:i64[{batch_size},{seq_len}]", false, "input ids [B, T]"},
               {"targets", "targets:i64[{batch_size},{seq_len}]", false, "target ids [B, T]"},
               {"domain", "domain:i64[{batch_size}]", false, "each row's domain index (domains in alphabetical order)"}};
  e.check = check;
  e.factory = [](const Params& p, const NodeResolver& r) { return std::make_shared<MixtureNode>(p, r); };
  return e;
}

}  // namespace
}  // namespace scion::lm

using scion::lm::mixture_entry;
SCION_REGISTER_PLUGIN(mixture_entry)
