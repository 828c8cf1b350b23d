// ELLE graphs end to end: bad inputs refused at validation with their file:line:column, a run
// killed with SIGKILL mid-stream resumes on the same curve (memories, replay and AP state
// included), and prompt tuning on a frozen base model changes only the prompt.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "fixtures.h"
#include "graph/graph.h"
#include "runtime/in_process.h"
#include "scion_cli.h"

using namespace scion::runtime;

namespace {

// Three stages: news, a warmup after growing, cs; a domain prompt; AP/AP+ every 4 updates.
std::string elle_graph() {
  return R"([run]
name = "elle-test"
seed = 3
threads = 1

[nodes.tok]
plugin = "tokenizer.bytes"

[nodes.stream]
plugin = "data.domains"
tokenizer = "tok"
root = "@DATA@/data/corpus"
domains = ["news", "cs"]
schedule = { first = "news", recover = "warmup", second = "cs" }
memory_tokens = 2048
replay = 0.25
evaluator = "ll"
seq_len = 32
batch_size = 4

[nodes.dp]
plugin = "prompt.domain"
first_id = 257
tokens = "stream.tokens"
targets = "stream.targets"
domain = "stream.domain"

[nodes.gpt]
plugin = "model.gpt"
vocab = 259
context = 32
layers = 2
width = 32
heads = 4
tied = false
tokens = "dp.tokens"

[nodes.lm]
plugin = "loss.lm"
logits = "gpt.logits"
targets = "dp.targets"

[nodes.ll]
plugin = "eval.lifelong"
model = "gpt"
stream = "stream"
prompt = "dp"
max_batches = 2

[[stages]]
name = "first"
steps = 8
train = ["gpt"]
losses = ["lm"]
optimizer = { lr = 3e-3, warmup = 2 }
eval = { every = 4, evaluators = ["ll"] }
checkpoint = { every = 4 }

[[stages]]
name = "recover"
steps = 4
train = ["gpt"]
losses = ["lm"]
optimizer = { lr = 1e-3, decay = "constant" }
eval = { every = 4, evaluators = ["ll"] }
ops = [ { plugin = "elle.expand", target = "gpt", base_layers = 2, layers = 3, width = 48, noise = 0.01 } ]

[[stages]]
name = "second"
steps = 12
train = ["gpt"]
losses = ["lm"]
optimizer = { lr = 3e-3, warmup = 2 }
eval = { every = 4, evaluators = ["ll"] }
checkpoint = { every = 4 }
)";
}
std::string edit(std::string text, const std::string& from, const std::string& to) {
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? text : text.replace(at, from.size(), to);
}
int line_of(const std::string& text, const std::string& what) {
  const size_t at = text.find(what);
  return at == std::string::npos ? -1 : 1 + int(std::count(text.begin(), text.begin() + long(at), '\n'));
}
}  // namespace

TEST(ElleGraphs, BadInputsAreRefusedAtValidationWithTheirPlace) {
  struct Case {
    const char* what;
    std::string from, to, at, message, hint;
    int below = 0;  // the error's line is this many lines above `at` (a stage's [[stages]] header)
  };
  const std::vector<Case> cases = {
      {"an unknown domain", "domains = [\"news\", \"cs\"]", "domains = [\"news\", \"physics\"]", "domains = [", "unknown domain 'physics'",
       "the domains under"},
      {"an unknown domain in the schedule", "second = \"cs\" }", "second = \"law\" }", "schedule = {", "unknown domain 'law'",
       "domains: news, cs"},
      {"a memory larger than the domain", "memory_tokens = 2048", "memory_tokens = 9000000", "memory_tokens =",
       "is larger than domain 'news'", "set memory_tokens <="},
      {"a warmup before any domain", "schedule = { first = \"news\", recover = \"warmup\"",
       "schedule = { first = \"warmup\", recover = \"news\"", "schedule = {", "comes before any domain has a memory",
       "follows a domain's stage"},
      {"a stage that does not evaluate AP+", "eval = { every = 4, evaluators = [\"ll\"] }\nops", "ops", "name = \"recover\"",
       "does not evaluate with 'll'", "evaluators = [\"ll\"]", 1},
      // Issue 35, items 5 and 9: refused when the stage started (or never: memory grew unbounded).
      {"an expansion width that is not a multiple of the head size", "width = 48, noise", "width = 50, noise", "ops = [",
       "width 50 is not a multiple of the head size 8 of model 'gpt'", "width = 56"},
      {"an expansion to 10^8 layers", "layers = 3, width", "layers = 100000000, width", "ops = [",
       "op 'elle.expand' of stage 1: the grown model 'gpt'", "check width, ffn and layers"},
      {"domain prompts outside the vocabulary", "vocab = 259", "vocab = 258", "first_id = 257", "beyond the vocabulary of model 'gpt'",
       "vocab >= 259"},
  };
  const fs::path dir = temp("elle_refusals");
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string text = with_data(edit(elle_graph(), c.from, c.to));
    std::vector<Diagnostic> diags;
    try {
      load_graph("g.toml", text, {}, scion::tests::in_tree_registry());
    } catch (const GraphError& e) {
      diags = e.diagnostics();
    }
    ASSERT_FALSE(diags.empty()) << "validation passed";
    const Diagnostic* d = nullptr;
    for (const auto& x : diags)
      if (x.message.find(c.message) != std::string::npos) d = &x;
    ASSERT_NE(d, nullptr) << "no diagnostic says: " << c.message << "; first: " << diags[0].message;
    const int line = line_of(text, c.at) - c.below;
    EXPECT_EQ(d->pos.line, line) << d->message;
    EXPECT_GT(d->pos.column, 0);
    EXPECT_NE(d->hint.find(c.hint), std::string::npos) << d->hint;
    std::ofstream(dir / "g.toml") << text;
    const Result r = sh("validate " + (dir / "g.toml").string());
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.out.find("g.toml:" + std::to_string(line) + ":"), std::string::npos) << r.out;
  }
  fs::remove_all(dir);
}

// Issue 35, item 9: a domain whose valid.txt is empty or shorter than one window failed at its
// first evaluation, after its stage trained, without naming the domain; windows longer than
// the model's context (through the domain prompt node) failed at the first forward pass.
TEST(ElleGraphs, ShortValidationTextAndLongWindowsAreRefusedAtValidation) {
  const fs::path dir = temp("elle_short_valid");
  const fs::path corpus = fs::path(SCION_SOURCE_DIR) / "data/corpus";
  for (const char* d : {"news", "cs"}) {
    fs::create_directories(dir / "root" / d);
    fs::copy_file(corpus / d / "train.txt", dir / "root" / d / "train.txt");
    fs::copy_file(corpus / d / "valid.txt", dir / "root" / d / "valid.txt");
  }
  const std::string root = "root = \"@DATA@/data/corpus\"", mine = "root = \"" + (dir / "root").string() + "\"";
  for (const std::string valid : {"", "a few words\n"}) {
    SCOPED_TRACE("valid.txt of " + std::to_string(valid.size()) + " bytes");
    std::ofstream(dir / "root" / "cs" / "valid.txt", std::ios::trunc) << valid;
    const std::string text = with_data(edit(elle_graph(), root, mine));
    std::ofstream(dir / "g.toml") << text;
    const Result r = sh("validate " + (dir / "g.toml").string());
    EXPECT_EQ(WEXITSTATUS(r.rc), 3) << r.out;
    EXPECT_NE(r.out.find("g.toml:" + std::to_string(line_of(text, "domains = [")) + ":20: error: node 'stream' (data.domains): "
                         "domain 'cs': " + (dir / "root" / "cs" / "valid.txt").string() +
                         " holds fewer tokens than one window of 33"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("give domain 'cs' a longer valid.txt"), std::string::npos) << r.out;
  }
  const std::string text = with_data(edit(elle_graph(), "seq_len = 32", "seq_len = 64"));
  std::ofstream(dir / "g.toml") << text;
  const Result r = sh("validate " + (dir / "g.toml").string());
  EXPECT_EQ(WEXITSTATUS(r.rc), 3) << r.out;
  EXPECT_NE(r.out.find("feeds windows of 64 tokens, more than the context of 32"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

TEST(ElleGraphs, APromptLongerThanTheContextIsRefused) {
  // The tiny GPT on a soft prompt's tokens: 8 prompt positions before 32 text tokens, in a
  // context of 36.
  const std::string g = with_data(tiny_gpt_graph(
      {.head = "[run]\nname = \"pt\"\n\n",
       .corpus = {.files = "@DATA@/data/corpus/cs/train.txt", .seq_len = 32},
       .model = {.name = "gpt",
                 .context = 36,
                 .width = 32,
                 .keys = "prompt_embeds = \"soft.prompt_embeds\"\n",
                 .tokens = "soft.tokens"},
       .nodes = "[nodes.soft]\nplugin = \"prompt.tuning\"\nlength = 8\nwidth = 32\ntokens = \"corpus.tokens\"\n",
       .stages = "[[stages]]\nsteps = 1\ntrain = [\"soft\"]\nlosses = [\"lm\"]\n"}));
  try {
    load_graph("g.toml", g, {}, scion::tests::in_tree_registry());
    FAIL() << "validation passed";
  } catch (const GraphError& e) {
    bool found = false;
    for (const auto& d : e.diagnostics())
      if (d.message.find("longer than the context of model 'gpt' (36)") != std::string::npos) {
        found = true;
        EXPECT_EQ(d.pos.line, line_of(g, "length = 8"));
        EXPECT_NE(d.hint.find("set length <= 4"), std::string::npos);
      }
    EXPECT_TRUE(found) << e.what();
  }
  EXPECT_NO_THROW(load_graph("g.toml", edit(g, "length = 8", "length = 4"), {}, scion::tests::in_tree_registry()));
}

TEST(ElleGraphs, AKilledRunResumesOnTheSameCurveWithMemoriesAndReplay) {
  const fs::path dir = temp("elle_resume");
  std::ofstream(dir / "g.toml") << with_data(elle_graph());
  const std::string g = (dir / "g.toml").string();
  ASSERT_EQ(run_scion(g + " --out " + (dir / "full").string()), 0);
  const auto want = metrics(dir / "full");
  ASSERT_GT(want.size(), 24u);
  // Killed in the cs stage (after memories, the expansion and replay began), resumed.
  const fs::path part = dir / "part";
  ASSERT_TRUE(run_killed_after_checkpoint(g, part, 16)) << "the run finished before it could be killed";
  ASSERT_EQ(run_scion(g + " --out " + part.string() + " --resume"), 0);
  const auto got = metrics(part);
  ASSERT_EQ(got.size(), want.size());
  int evals = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(json_int(got[i].at("step")), json_int(want[i].at("step")));
    for (const auto& [k, v] : json_object(want[i])) {
      if (k == "tokens_per_s" || k == "elapsed_s") continue;
      ASSERT_TRUE(got[i].contains(k)) << k << " at line " << i;
      EXPECT_EQ(json_dump(got[i].at(k)), json_dump(v)) << k << " at line " << i;
    }
    if (want[i].contains("ll/ap_plus")) ++evals;
  }
  EXPECT_GE(evals, 4);  // AP+ from the warmup on
  // The replay weights after the kill came from the checkpoint (they are logged at each eval).
  EXPECT_TRUE(want.back().contains("ll/replay/news/weight"));
  fs::remove_all(dir);
}

TEST(ElleGraphs, PromptTuningOnAFrozenModelChangesOnlyThePrompt) {
  const fs::path dir = temp("elle_prompt");
  const std::string base =
      with_data(tiny_gpt_graph({.head = "[run]\nname = \"base\"\nseed = 4\nthreads = 1\n\n",
                                .corpus = {.files = "@DATA@/data/corpus/news/train.txt", .seq_len = 24},
                                .model = {.name = "gpt", .context = 32, .width = 32},
                                .stages = "[[stages]]\nsteps = 3\ntrain = [\"gpt\"]\nlosses = [\"lm\"]\n"}));
  std::ofstream(dir / "base.toml") << base;
  ASSERT_EQ(run_scion((dir / "base.toml").string() + " --out " + (dir / "base").string()), 0);
  const std::string weights = (dir / "base" / "gpt.safetensors").string();
  std::string tune = edit(base, "tokens = \"corpus.tokens\"\n\n[nodes.lm]",
                          "tokens = \"soft.tokens\"\nprompt_embeds = \"soft.prompt_embeds\"\nload = \"" + weights +
                              "\"\n\n[nodes.soft]\nplugin = \"prompt.tuning\"\nlength = 8\nwidth = 32\ntokens = \"corpus.tokens\"\n\n[nodes.lm]");
  tune = edit(tune, "train = [\"gpt\"]", "train = [\"soft\"]\noptimizer = { lr = 0.05, decay = \"constant\" }");
  tune = edit(tune, "steps = 3", "steps = 6");
  {
    const std::string& g = tune;
    std::ofstream(dir / "tune.toml") << g;
    ASSERT_EQ(run_scion((dir / "tune.toml").string() + " --out " + (dir / "tune").string()), 0);
    auto before = safetensors::load(weights).tensors, after = safetensors::load((dir / "tune" / "gpt.safetensors").string()).tensors;
    ASSERT_EQ(before.size(), after.size());
    for (size_t i = 0; i < before.size(); ++i)
      EXPECT_EQ(before[i].second.to_vector(), after[i].second.to_vector()) << before[i].first;  // bit-identical
    auto prompt = safetensors::load((dir / "tune" / "soft.safetensors").string()).tensors;
    ASSERT_EQ(prompt.size(), 1u);
    EXPECT_EQ(prompt[0].second.shape(), (Shape{8, 32}));
    // It learned: the prompt moved from where the same run with lr 0 leaves it.
    std::ofstream(dir / "still.toml") << edit(g, "lr = 0.05", "lr = 0.0");
    ASSERT_EQ(run_scion((dir / "still.toml").string() + " --out " + (dir / "still").string()), 0);
    auto start = safetensors::load((dir / "still" / "soft.safetensors").string()).tensors;
    double moved = 0;
    auto a = prompt[0].second.to_vector(), b = start[0].second.to_vector();
    for (size_t i = 0; i < a.size(); ++i) moved = std::max(moved, std::fabs(double(a[i]) - b[i]));
    EXPECT_GT(moved, 1e-2);
  }
  fs::remove_all(dir);
}
