// data.mixture and Sheared-LLaMA's dynamic batch loading: the logged weights follow
// Algorithm 1 from the logged losses, the drawn domains follow the weights, ranks share one
// stream, a killed run resumes on the same curve, and validation refuses what cannot work.
#include <gtest/gtest.h>

#include <cmath>

#include "fixtures.h"
#include "runtime/in_process.h"
#include "scion_cli.h"

namespace {

const std::vector<std::string> kDomains = {"news", "cs", "biomedical"};  // the graph's order

// A 1-layer byte-level GPT on three domains of the bundled corpus, evaluated per domain every 5
// updates; news starts twice as likely, and its reference is far above its loss (no excess).
std::string mixture_graph(const std::string& extra = "", int steps = 20) {
  return with_data(R"([run]
name = "mix"
seed = 5
threads = 1

[nodes.tok]
plugin = "tokenizer.bytes"

[nodes.mix]
plugin = "data.mixture"
tokenizer = "tok"
domains = { news = ["@DATA@/data/corpus/news/train.txt"], cs = "@DATA@/data/corpus/cs/train.txt", biomedical = ["@DATA@/data/corpus/biomedical/train.txt"] }
weights = { news = 2, cs = 1, biomedical = 1 }
reference = { news = 9.0, cs = 2.0, biomedical = 2.5 }
evaluator = "ppl"
seq_len = 32
batch_size = 8
)" + extra + R"(
[nodes.model]
plugin = "model.gpt"
vocab = 257
context = 32
layers = 1
width = 32
heads = 2
tokens = "mix.tokens"

[nodes.lm]
plugin = "loss.lm"
logits = "model.logits"
targets = "mix.targets"

[nodes.ppl]
plugin = "eval.ppl"
model = "model"
tokenizer = "tok"
seq_len = 32
max_batches = 2
domains = { news = "@DATA@/data/corpus/news/valid.txt", cs = "@DATA@/data/corpus/cs/valid.txt", biomedical = "@DATA@/data/corpus/biomedical/valid.txt" }

[[stages]]
name = "train"
steps = )" + std::to_string(steps) + R"(
train = ["model"]
losses = ["lm"]
optimizer = { lr = 3e-3 }
eval = { every = 5, evaluators = ["ppl"] }
checkpoint = { every = 5 }
log_every = 5
)");
}

// Algorithm 1 as the paper writes it, from scratch: w ← w·exp(η·Δ), normalised, then smoothed.
std::vector<double> by_hand(std::vector<double> w, const std::vector<double>& loss, const std::vector<double>& ref, double eta,
                            double c, bool clip) {
  double sum = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    const double d = loss[i] - ref[i];
    w[i] *= std::exp(eta * (clip ? std::max(d, 0.0) : d));
    sum += w[i];
  }
  for (double& x : w) x = (1 - c) * x / sum + c / double(w.size());
  return w;
}

void expect_weights_follow_algorithm_one(const fs::path& run, double eta, double c, bool clip) {
  const std::vector<double> ref = {9.0, 2.0, 2.5};
  std::vector<double> w = {0.5, 0.25, 0.25};
  int evals = 0;
  for (const Json& line : metrics(run)) {
    if (!line.contains("ppl/news/loss")) continue;
    std::vector<double> loss;
    for (const auto& d : kDomains) loss.push_back(json_number(line.at("ppl/" + d + "/loss")));
    w = by_hand(w, loss, ref, eta, c, clip);
    for (size_t i = 0; i < kDomains.size(); ++i)
      EXPECT_NEAR(json_number(line.at("mix/weight/" + kDomains[i])), w[i], 1e-12) << kDomains[i] << " at eval " << evals;
    ++evals;
  }
  EXPECT_EQ(evals, 4);
}

}  // namespace

// The weights logged at each evaluation are Algorithm 1's, recomputed here from the losses
// logged beside them: news (loss far below its reference) loses weight to the domains with an
// excess, and with clip_excess = false (the reference code) its negative Δ counts too.
TEST(DynamicBatchLoading, LoggedWeightsAreAlgorithmOneOfTheLoggedLosses) {
  const fs::path dir = temp("dbl_weights");
  std::ofstream(dir / "g.toml") << mixture_graph();
  ASSERT_EQ(run_scion((dir / "g.toml").string() + " --out " + (dir / "run").string()), 0);
  expect_weights_follow_algorithm_one(dir / "run", 1.0, 1e-4, true);
  const auto last = metrics(dir / "run").back();
  EXPECT_LT(json_number(last.at("mix/weight/news")), 0.5);

  ASSERT_EQ(run_scion((dir / "g.toml").string() + " --out " + (dir / "unclipped").string() +
                      " --set nodes.mix.clip_excess=false --set nodes.mix.eta=0.5 --set nodes.mix.smoothing=0.01"),
            0);
  expect_weights_follow_algorithm_one(dir / "unclipped", 0.5, 0.01, false);
  // Unclipped, news's Δ of about −4.5 nats drives its weight to the smoothing floor.
  EXPECT_LT(json_number(metrics(dir / "unclipped").back().at("mix/weight/news")), 0.02);
  fs::remove_all(dir);
}

// Killed after its second checkpoint and resumed, the run logs what the uninterrupted run did:
// the weights, the per-domain streams and the windows drawn are all in the checkpoint.
TEST(DynamicBatchLoading, AKilledRunResumesOnTheSameWeightsAndBatches) {
  const fs::path dir = temp("dbl_resume");
  std::ofstream(dir / "g.toml") << mixture_graph("", 40);
  const std::string g = (dir / "g.toml").string();
  ASSERT_EQ(run_scion(g + " --out " + (dir / "full").string()), 0);
  const auto want = metrics(dir / "full");
  const fs::path part = dir / "part";
  ASSERT_TRUE(run_killed_after_checkpoint(g, part, 10)) << "the run finished before it could be killed";
  ASSERT_EQ(run_scion(g + " --out " + part.string() + " --resume"), 0);
  const auto got = metrics(part);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    for (const auto& [k, v] : json_object(want[i])) {
      if (k == "tokens_per_s" || k == "elapsed_s") continue;
      ASSERT_TRUE(got[i].contains(k)) << k << " at line " << i;
      EXPECT_EQ(json_dump(got[i].at(k)), json_dump(v)) << k << " at line " << i;
    }
  fs::remove_all(dir);
}

namespace {

class Nodes final : public NodeResolver {
 public:
  std::map<std::string, std::shared_ptr<Plugin>> nodes;
  std::shared_ptr<Plugin> node(const std::string& n) const override { return nodes.at(n); }
};

// The mixture node of a graph with fixed weights, as rank `rank` of `world`.
std::shared_ptr<DataSource> mixture(int rank, int world, const std::string& weights = "{ news = 2, cs = 1, biomedical = 1 }") {
  std::string g = mixture_graph();
  // Fixed weights: no evaluator, no reference.
  for (const std::string& cut : {std::string("reference = { news = 9.0, cs = 2.0, biomedical = 2.5 }\n"),
                                 std::string("evaluator = \"ppl\"\n")})
    g.erase(g.find(cut), cut.size());
  g.replace(g.find("{ news = 2, cs = 1, biomedical = 1 }"), 36, weights);
  auto graph = runtime::load_graph("g.toml", g, {}, scion::tests::in_tree_registry());
  static Nodes nodes;
  NodeContext ctx{7, rank, world, {}};
  nodes.nodes["tok"] = scion::tests::in_tree_registry().create("tokenizer.bytes", Params(Json::object(), "tok"), nodes);
  return std::dynamic_pointer_cast<DataSource>(scion::tests::in_tree_registry().create(
      "data.mixture", Params(graph.node("mix")->params, "mix", ctx), nodes));
}

std::vector<int64_t> column(const TensorMap& b, const std::string& port) { return b.at(port).to_vector_i64(); }

}  // namespace

// Drawn over 400 batches of 8 rows, each domain's share of the rows is its weight (within four
// standard deviations of a binomial count).
TEST(DynamicBatchLoading, RowsAreDrawnFromTheDomainsByTheirWeights) {
  auto m = mixture(0, 1, "{ news = 6, cs = 3, biomedical = 1 }");
  std::vector<double> count(3, 0);
  const int n = 400 * 8;
  for (int s = 0; s < 400; ++s)
    for (int64_t d : column(m->next(StepContext()), "domain")) count[size_t(d)] += 1;
  // Domain indices follow the names' alphabetical order: biomedical, cs, news.
  const std::vector<double> w = {0.1, 0.3, 0.6};
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(count[i] / n, w[i], 4 * std::sqrt(w[i] * (1 - w[i]) / n)) << "domain " << i;
}

// Two ranks' rows, interleaved, are the one-process batch (tokens, targets and domains), and
// a state restores the stream: on one process, and on two ranks (a run resumed on another
// world size draws what the one process would have drawn next).
TEST(DynamicBatchLoading, RanksShareOneStreamAndAStateRestoresItOnAnyWorldSize) {
  // Rank 0's and rank 1's rows of one step, interleaved (row j of rank r is global row 2j + r).
  auto interleaved = [](const TensorMap& b0, const TensorMap& b1, const std::string& port) {
    std::vector<int64_t> joined, per0 = column(b0, port), per1 = column(b1, port);
    const size_t row = port == "domain" ? 1 : 32;
    for (size_t j = 0; j < per0.size() / row; ++j) {
      joined.insert(joined.end(), per0.begin() + j * row, per0.begin() + (j + 1) * row);
      joined.insert(joined.end(), per1.begin() + j * row, per1.begin() + (j + 1) * row);
    }
    return joined;
  };
  // Two steps of one process: the 16 global rows of one two-rank step.
  auto two_steps = [](DataSource& one, const std::string& port) {
    std::vector<int64_t> both = column(one.next(StepContext()), port), second = column(one.next(StepContext()), port);
    both.insert(both.end(), second.begin(), second.end());
    return both;
  };
  auto one = mixture(0, 1), r0 = mixture(0, 2), r1 = mixture(1, 2);
  for (int s = 0; s < 5; ++s) {
    const TensorMap b0 = r0->next(StepContext()), b1 = r1->next(StepContext());
    const TensorMap a = one->next(StepContext()), c = one->next(StepContext());
    for (const std::string port : {"tokens", "targets", "domain"}) {
      std::vector<int64_t> both = column(a, port), second = column(c, port);
      both.insert(both.end(), second.begin(), second.end());
      EXPECT_EQ(interleaved(b0, b1, port), both) << port << " at step " << s;
    }
  }
  const Json state = one->state();
  auto again = mixture(0, 1), h0 = mixture(0, 2), h1 = mixture(1, 2);
  again->restore(state), h0->restore(state), h1->restore(state);
  for (int s = 0; s < 3; ++s) {
    const std::vector<int64_t> want = two_steps(*one, "tokens");
    EXPECT_EQ(two_steps(*again, "tokens"), want) << "one process, step " << s;
    EXPECT_EQ(interleaved(h0->next(StepContext()), h1->next(StepContext()), "tokens"), want) << "two ranks, step " << s;
  }
}

// Each refusal names the graph's file, line and column, says what is wrong and gives a hint;
// nothing is run.
TEST(DynamicBatchLoading, ValidationRefusesReferencesAndWeightsOfUnknownDomainsAndUnmeasuredDomains) {
  const fs::path dir = temp("dbl_refusals");
  struct Case {
    std::string from, to, says;
  };
  std::vector<Case> cases = {
      {"reference = { news = 9.0,", "reference = { wiki = 1.0, news = 9.0,", "a reference loss for domain 'wiki', which domains does not have"},
      {"weights = { news = 2,", "weights = { books = 1, news = 2,", "weights names domain 'books', which domains does not have"},
      {"weights = { news = 2,", "weights = { news = -2,", "the weight of domain 'news' must be a positive number"},
      {"reference = { news = 9.0, cs = 2.0, ", "reference = { news = 9.0, ", "no reference loss for domain 'cs'"},
      {"domains = { news = \"@DATA@/data/corpus/news/valid.txt\", ", "domains = { ",
       "evaluator 'ppl' does not score domain 'news'"},
      {"evaluator = \"ppl\"", "evaluator = \"lm\"", "evaluator 'lm' is not an evaluator node of this graph"},
      {"eval = { every = 5,", "eval = { every = 0,", "no stage evaluates 'ppl', so the domain weights would never move"},
      {"cs = \"@DATA@/data/corpus/cs/train.txt\"", "cs = \"@DATA@/data/corpus/cs/nothing*.txt\"", "domain 'cs': no file matches"},
  };
  // A reference run whose evaluations never scored the domains (made before validation).
  fs::create_directories(dir / "ref");
  std::ofstream(dir / "ref" / "metrics.jsonl") << "{\"step\": 5, \"ppl/loss\": 2.5}\n";
  cases.push_back({"evaluator = \"ppl\"", "evaluator = \"ppl\"\nreference_run = \"" + (dir / "ref").string() + "\"",
                   "has the loss of every domain"});
  const std::string base = mixture_graph();
  for (const Case& c : cases) {
    std::string g = base;
    std::string from = with_data(c.from);
    const size_t at = g.find(from);
    ASSERT_NE(at, std::string::npos) << c.from;
    g.replace(at, from.size(), with_data(c.to));
    std::ofstream(dir / "g.toml") << g;
    const Result r = sh("validate " + (dir / "g.toml").string());
    EXPECT_NE(r.rc, 0) << c.says;
    EXPECT_NE(r.out.find(c.says), std::string::npos) << r.out;
    EXPECT_NE(r.out.find((dir / "g.toml").string() + ":"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("hint:"), std::string::npos) << r.out;
  }
  std::ofstream(dir / "g.toml") << base;
  const Result ok = sh("validate " + (dir / "g.toml").string());
  EXPECT_EQ(ok.rc, 0) << ok.out;
  fs::remove_all(dir);
}

// reference_run reads the reference losses from a run that evaluated the same domains (its
// last evaluation with all of them); the graph's own table overrides single domains.
TEST(DynamicBatchLoading, ReferenceLossesComeFromAReferenceRunsLastEvaluation) {
  const fs::path dir = temp("dbl_refrun");
  std::ofstream(dir / "g.toml") << mixture_graph("", 10);
  ASSERT_EQ(run_scion((dir / "g.toml").string() + " --out " + (dir / "ref").string()), 0);
  const auto ref = metrics(dir / "ref");
  std::vector<double> ref_loss;
  for (const auto& d : kDomains) ref_loss.push_back(json_number(ref.back().at("ppl/" + d + "/loss")));
  std::string g = mixture_graph("reference_run = \"" + (dir / "ref").string() + "\"\n", 5);
  const std::string table = "reference = { news = 9.0, cs = 2.0, biomedical = 2.5 }";
  g.replace(g.find(table), table.size(), "reference = { news = 9.0 }");
  std::ofstream(dir / "h.toml") << g;
  ASSERT_EQ(run_scion((dir / "h.toml").string() + " --out " + (dir / "run").string()), 0);
  const auto line = metrics(dir / "run").back();
  std::vector<double> loss;
  for (const auto& d : kDomains) loss.push_back(json_number(line.at("ppl/" + d + "/loss")));
  const auto w = by_hand({0.5, 0.25, 0.25}, loss, {9.0, ref_loss[1], ref_loss[2]}, 1.0, 1e-4, true);
  for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(json_number(line.at("mix/weight/" + kDomains[i])), w[i], 1e-12) << kDomains[i];
  fs::remove_all(dir);
}

// graphs/dynamic_batch_loading.toml, shortened: the five domains' weights are logged at each
// evaluation and sum to one.
TEST(DynamicBatchLoading, TheBundledGraphRunsShortened) {
  const fs::path d = temp("dbl_graph");
  const Result r = sh("run graphs/dynamic_batch_loading.toml --plain --out " + d.string() +
                      " --set stages.0.steps=4 --set stages.0.eval.every=2 --set nodes.ppl.max_batches=1"
                      " --set nodes.student.layers=1 --set nodes.student.width=32 --set nodes.student.heads=2");
  ASSERT_EQ(r.rc, 0) << r.out;
  int evals = 0;
  for (const Json& line : metrics(d)) {
    if (!line.contains("ppl/cs/loss")) continue;
    double sum = 0;
    for (const char* dom : {"reference", "news", "literature", "biomedical", "cs"}) sum += json_number(line.at(std::string("mix/weight/") + dom));
    EXPECT_NEAR(sum, 1.0, 1e-12);
    ++evals;
  }
  EXPECT_EQ(evals, 2);
  fs::remove_all(d);
}
