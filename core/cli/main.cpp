// The `scion` command: run, validate, plugins, eval, generate, tokenize, report, export (cli/export.cpp).

#include <boost/program_options.hpp>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <new>
#include <sstream>
#include <toml++/toml.h>

#include "cli/cli.h"
#include "report/report.h"
#include "graph/graph.h"
#include "graph/node_factory.h"
#include "runtime/executor.h"
#include "runtime/install.h"
#include "runtime/paths.h"
#include "runtime/registry.h"
#include "runtime/sampling.h"
#include "runtime/stop_signals.h"
#include "scion/checkpoint.h"
#include "scion/hf_directory.h"
#include "scion/files.h"
#include "scion/safetensors.h"
#include "scion/shards.h"
#include "scion/surgery.h"
#include "scion/threads.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace scion;
using namespace scion::runtime;

namespace scion::cli {

PluginRegistry load_registry(const std::vector<std::string>& extra, bool quiet) {
  for (const auto& d : extra)
    if (!fs::is_directory(d))
      throw po::error("--plugin-dir '" + d + "' is " + (fs::exists(d) ? "not a folder" : "missing") +
                      " (hint: name the folder that holds the plugin libraries, lib*.so)");
  PluginRegistry reg;
  reg.scan(plugin_search_path(extra));
  if (!quiet)
    for (const auto& p : reg.problems()) std::cerr << "warning: " << p << "\n";
  return reg;
}

// Loads a model node from a Scion checkpoint (plugin and config from its metadata).
namespace {
// The model plugin that loads a Hugging Face directory of this config.json's architecture.
std::string plugin_for_directory(const PluginRegistry& reg, const std::string& dir) {
  const Json config = hf::read_config(dir);
  const std::string file = dir + "/" + hf::kConfigFile;
  SCION_CHECK(config.contains("architectures") && config.at("architectures").is_array() &&
                  !config.at("architectures").empty() && config.at("architectures")[0].is_string(),
              file, ": no \"architectures\" list naming the model class (e.g. [\"LlamaForCausalLM\"])");
  const std::string arch = config.at("architectures")[0].get<std::string>();
  std::string known;
  for (const std::string& name : reg.names())
    for (const std::string& a : reg.find(name)->entry.hf_architectures) {
      if (a == arch) return name;
      known += (known.empty() ? "" : ", ") + a;
    }
  throw Error(file + ": architecture '" + arch + "' is not one a model plugin loads (" + known + ")");
}
}  // namespace

std::shared_ptr<Model> model_from_checkpoint(const PluginRegistry& reg, const std::string& file,
                                            const std::string& plugin_override) {
  std::string plugin = plugin_override;
  if (plugin.empty() && hf::is_model_directory(file)) plugin = plugin_for_directory(reg, file);
  // The header only: the model node reads the weights itself (reading them here too was a
  // second full read of the file).
  const safetensors::Metadata metadata = plugin.empty() ? safetensors::load_metadata(file) : safetensors::Metadata{};
  if (plugin.empty()) {
    auto it = metadata.find(checkpoint::kPluginKey);
    SCION_CHECK(it != metadata.end(), "'", file, "' carries no ", checkpoint::kPluginKey,
                " metadata; name the model plugin with --model-plugin");
    plugin = it->second;
  }
  const auto* info = reg.find(plugin);
  SCION_CHECK(info && info->entry.kind == PluginKind::model, "'", plugin, "' is not a model plugin");
  NodeSpec spec;
  spec.name = spec.plugin = plugin;
  spec.info = info;
  for (const auto& ps : info->entry.params) spec.params[ps.name] = ps.default_value;
  spec.params["load"] = Json(file);
  spec.frozen = true;
  const NoNodes none;
  return std::dynamic_pointer_cast<Model>(make_node(reg, spec, GraphContext{}, none));
}

std::string set_override(const std::string& key, const std::string& value) {
  // toml++ writes it as a basic string, escaped: a path is data, never TOML.
  std::ostringstream quoted;
  quoted << toml::toml_formatter{toml::value<std::string>(value), toml::format_flags::allow_unicode_strings};
  return key + "=" + quoted.str();
}

// Parses options of a subcommand; returns false after printing help.
bool parse(int argc, char** argv, po::options_description& d, po::positional_options_description* pos,
           const char* usage) {
  d.add_options()("help,h", "this help");
  po::variables_map vm;
  auto parser = po::command_line_parser(argc, argv).options(d);
  if (pos) parser.positional(*pos);
  po::store(parser.run(), vm);
  if (vm.count("help")) {
    std::cout << usage << "\n" << d << "\n";
    return false;
  }
  po::notify(vm);
  return true;
}

}  // namespace scion::cli

using namespace scion::cli;

namespace {

// Exit codes (docs/reliability.md): 0 done; 1 failed while working (a file, a node, a
// checkpoint, out of memory); 2 the command line is wrong; 3 the graph was refused by
// validation, before anything ran or was written.
constexpr int kExitFailed = 1, kExitUsage = 2, kExitGraph = 3, kExitNonFinite = 4, kExitBusy = 5;

const char* kUsage =
    "scion — pre-train language models by reusing knowledge that already exists\n\n"
    "usage: scion <command> [options]\n\n"
    "commands:\n"
    "  run GRAPH        validate and run a graph (--set k=v, --out DIR, --resume, --device, --threads)\n"
    "  validate GRAPH   check a graph without running anything or writing anything\n"
    "  plugins [NAME]   list the plugins found, or one plugin's parameters and ports\n"
    "  eval GRAPH       evaluate a checkpoint with the graph's evaluators (--checkpoint FILE)\n"
    "  generate         sample text from a GPT checkpoint (--checkpoint FILE --prompt TEXT)\n"
    "  tokenize         write llm.c token shards from text files\n"
    "  report RUN...    an HTML page (or SVG) comparing the curves of several runs (--out FILE)\n"
    "  export           write a checkpoint as a Hugging Face model directory (--checkpoint X --out DIR)\n"
    "  teacher-cache GRAPH  run a frozen teacher once over a student graph's batches, store its top-K or samples\n\n"
    "  scion <command> --help    options of a command\n"
    "  scion --version\n";


struct Common {
  std::vector<std::string> plugin_dirs, sets;
};

void add_common(po::options_description& d, Common& c) {
  d.add_options()("plugin-dir", po::value(&c.plugin_dirs)->composing(), "extra folder of plugin libraries (repeatable)")(
      "set", po::value(&c.sets)->composing(), "override a graph value: path.to.key=value (repeatable)");
}


int cmd_plugins(int argc, char** argv) {
  Common c;
  std::string name;
  po::options_description d("scion plugins options");
  d.add_options()("name", po::value(&name), "plugin to describe")("plugin-dir", po::value(&c.plugin_dirs)->composing(),
                                                                  "extra folder of plugin libraries");
  po::positional_options_description pos;
  pos.add("name", 1);
  if (!parse(argc, argv, d, &pos, "usage: scion plugins [NAME] [--plugin-dir D]")) return 0;
  PluginRegistry reg = load_registry(c.plugin_dirs);
  if (name.empty()) {
    for (const auto& n : reg.names()) {
      const auto* p = reg.find(n);
      std::printf("%-20s %-10s %-7s %s\n", n.c_str(), kind_name(p->entry.kind), p->entry.version.c_str(),
                  p->entry.description.c_str());
    }
    return 0;
  }
  const auto* p = reg.find(name);
  if (!p) {
    const std::string g = did_you_mean(name, reg.names());
    std::cerr << "error: no plugin named '" << name << "'" << (g.empty() ? "" : " (did you mean '" + g + "'?)") << "\n";
    return kExitUsage;
  }
  const PluginEntry& e = p->entry;
  std::printf("%s %s (%s) — %s\nlibrary: %s\n", e.name.c_str(), e.version.c_str(), kind_name(e.kind),
              e.description.c_str(), p->library.c_str());
  if (!e.params.empty()) std::printf("\nparameters:\n");
  for (const auto& ps : e.params) {
    std::string type = param_type_name(ps.type), rule;
    if (ps.has_kind) type += std::string(" (") + kind_name(ps.node_kind) + ")";
    if (ps.path) type += " file";  // found as docs/graph-reference.md "Paths" says
    for (const auto& c : ps.choices) rule += (rule.empty() ? " [" : " | ") + c;
    if (!ps.choices.empty()) rule += "]";
    if (ps.has_min || ps.has_max) rule += " [" + ps.range_text() + "]";
    std::printf("  %-16s %-16s %-12s %s%s\n", ps.name.c_str(), type.c_str(),
                ps.required ? "(required)" : ("= " + json_dump(ps.default_value)).c_str(), ps.doc.c_str(), rule.c_str());
  }
  if (!e.inputs.empty()) std::printf("\ninputs:\n");
  for (const auto& ps : e.inputs)
    std::printf("  %-16s %-16s %-12s %s\n", ps.name.c_str(), ps.type.c_str(), ps.optional ? "(optional)" : "",
                ps.doc.c_str());
  if (!e.outputs.empty()) std::printf("\noutputs:\n");
  for (const auto& ps : e.outputs) std::printf("  %-16s %-16s %-12s %s\n", ps.name.c_str(), ps.type.c_str(), "", ps.doc.c_str());
  return 0;
}

int cmd_validate(int argc, char** argv) {
  Common c;
  std::string graph;
  po::options_description d("scion validate options");
  d.add_options()("graph", po::value(&graph)->required(), "graph file");
  add_common(d, c);
  po::positional_options_description pos;
  pos.add("graph", 1);
  if (!parse(argc, argv, d, &pos, "usage: scion validate GRAPH [--set k=v]...")) return 0;
  PluginRegistry reg = load_registry(c.plugin_dirs);
  GraphSpec g = load_graph_file(graph, c.sets, reg);
  std::printf("%s: ok (%zu nodes, %zu stages, %lld steps)\n", graph.c_str(), g.nodes.size(), g.stages.size(),
              [&] {
                long long n = 0;
                for (const auto& s : g.stages) n += s.steps;
                return n;
              }());
  for (const auto& n : g.notes) std::printf("%s\n", format_diagnostic(n, "note").c_str());
  return 0;
}

// The exit code of an error (docs/runtime.md, "Exit codes").
int exit_code_of(const std::exception& e) {
  if (dynamic_cast<const GraphError*>(&e)) return 3;
  if (dynamic_cast<const NonFiniteError*>(&e)) return 4;
  if (dynamic_cast<const RunDirectoryBusy*>(&e)) return 5;
  if (auto* i = dynamic_cast<const Interrupted*>(&e)) return 128 + i->signal();
  return 1;
}

int cmd_run(int argc, char** argv) {
  Common c;
  std::string graph, device, comm;
  RunOptions o;
  bool plain = false;
  po::options_description d("scion run options");
  d.add_options()("graph", po::value(&graph)->required(), "graph file")("out", po::value(&o.out_dir),
                                                                         "run directory (default runs/<graph name>)")(
      "resume", po::bool_switch(&o.resume), "continue from the run directory's last checkpoint")(
      "device", po::value(&device), "cpu | cuda | auto (default: the graph's)")(
      "threads", po::value(&o.threads), "CPU threads (0 = all; default: the graph's)")(
      "plain", po::bool_switch(&plain), "plain log lines even on a terminal")(
      "comm", po::value(&comm), "data-parallel communicator: auto | single | mpi | nccl (default: the graph's)");
  add_common(d, c);
  po::positional_options_description pos;
  pos.add("graph", 1);
  if (!parse(argc, argv, d, &pos, "usage: scion run GRAPH [--set k=v]... [--out DIR] [--resume] [--device D] [--threads N] [--comm C]\n"
             "       mpirun -np N scion run GRAPH ...   (data parallel: docs/distributed.md)"))
    return 0;
  if (plain) o.progress = 0;
  PluginRegistry reg = load_registry(c.plugin_dirs);
  // --device and --comm replace the graph's [run] values before validation, so a graph that
  // names a device this machine lacks runs with --device cpu, and a bad value is refused there.
  if (!device.empty()) c.sets.push_back(set_override("run.device", device));
  if (!comm.empty()) c.sets.push_back(set_override("run.comm", comm));
  GraphSpec g = load_graph_file(graph, c.sets, reg);  // every problem before any work
  const std::vector<Diagnostic> notes = g.notes;
  Executor ex(std::move(g), reg, o);
  if (ex.rank() == 0)
    for (const auto& n : notes) std::fprintf(stderr, "%s\n", format_diagnostic(n, "note").c_str());
  try {
    ex.run();
  } catch (const Interrupted&) {
    throw;  // every rank stopped at the same update: a clean end
  } catch (const std::exception& e) {
    // One rank's error must not leave the others waiting in a collective: end the job.
    if (ex.world() > 1) {
      std::cerr << "error: " << e.what() << "\n";
      abort_distributed(exit_code_of(e));
    }
    throw;
  }
  std::printf("done: %s\n", ex.out_dir().c_str());
  return 0;
}

// A tokenizer node from its plugin's defaults; --vocab / --merges override them where the
// plugin has such a parameter (tokenizer.wordpiece's vocabulary is data/bert/vocab.txt, not
// GPT-2's; it takes no merges).
std::shared_ptr<scion::Tokenizer> make_tokenizer(const PluginRegistry& reg, const std::string& tok,
                                                const std::string& vocab, const std::string& merges) {
  const auto* info = reg.find(tok);
  SCION_CHECK(info && info->entry.kind == PluginKind::tokenizer, "'", tok, "' is not a tokenizer plugin");
  Json tp;
  bool has_vocab = false, has_merges = false;
  for (const auto& ps : info->entry.params) {
    tp[ps.name] = ps.default_value;
    has_vocab |= ps.name == "vocab";
    has_merges |= ps.name == "merges";
  }
  if (!vocab.empty()) {
    SCION_CHECK(has_vocab, "--vocab: '", tok, "' takes no vocabulary file");
    tp["vocab"] = Json(vocab);
  }
  if (!merges.empty()) {
    SCION_CHECK(has_merges, "--merges: '", tok, "' takes no merges file (BPE only)");
    tp["merges"] = Json(merges);
  }
  // Files the graph rule would find (runtime/paths.h), without a graph: the current
  // directory, then Scion's data directory (a tokenizer's default vocabulary).
  const std::vector<PathBase> bases = path_bases("");
  for (const auto& ps : info->entry.params) {
    if (!ps.path || !tp[ps.name].is_string() || json_string(tp[ps.name]).empty()) continue;
    const std::string f = json_string(tp[ps.name]);
    const auto r = resolve_path(f, bases);
    SCION_CHECK(r, tok, ": no file matches its ", ps.name, " '", f, "' (tried ", bases_tried(bases), "; hint: --",
                ps.name, " FILE)");
    tp[ps.name] = Json(*r);
  }
  const NoNodes none;
  NodeSpec spec;
  spec.name = spec.plugin = tok;
  spec.info = info;
  spec.params = tp;
  auto tk = std::dynamic_pointer_cast<scion::Tokenizer>(make_node(reg, spec, GraphContext{}, none));
  SCION_CHECK(tk, "'", tok, "' is not a tokenizer plugin");
  return tk;
}

// `generate` samples left to right: the checkpoint must hold a causal model whose vocabulary
// covers the tokenizer's ids and no more than padding to a multiple of 128 (GPT-2's 50257 as
// 50304); anything else samples meaningless text or fails on an id the tokenizer lacks.
void check_generates(const std::string& ckpt, Model& model, const std::string& tok_name, const scion::Tokenizer& tk) {
  if (auto* t = dynamic_cast<TransformerModel*>(&model)) {
    const std::string family = t->architecture().family;
    SCION_CHECK(family != "bert", "generate: '", ckpt, "' holds a BERT model (", family,
                "): an encoder trained to fill in masked tokens, not to continue text; generate needs a causal model "
                "(model.gpt)");
  }
  const Json cfg = model.config();
  if (!cfg.contains("vocab") || !cfg.at("vocab").is_number_integer()) return;
  const int64_t mv = json_int(cfg.at("vocab")), tv = tk.vocab_size(), padded = (tv + 127) / 128 * 128;
  SCION_CHECK(mv >= tv && mv <= padded, "generate: the model in '", ckpt, "' has a vocabulary of ", mv,
              ", but tokenizer ", tok_name, " has ", tv, " ids (a fit is ", tv, " to ", padded,
              "): it was trained with another tokenizer; name that one with --tokenizer (tokenizer.bytes: 257 ids, "
              "tokenizer.gpt2: 50257, tokenizer.wordpiece: its vocab.txt) and --vocab/--merges");
}

int cmd_generate(int argc, char** argv) {
  Common c;
  std::string ckpt, prompt, tok, vocab, merges, model_plugin;  // empty: the plugin's default
  SampleOptions o;
  o.temperature = 0.8;
  o.top_k = 40;
  po::options_description d("scion generate options");
  d.add_options()("checkpoint", po::value(&ckpt)->required(),
                  "model .safetensors written by scion, or a Hugging Face model directory")(
      "prompt", po::value(&prompt)->required(), "text to continue")("max-tokens", po::value(&o.max_tokens),
                                                                     "tokens to generate (64)")(
      "temperature", po::value(&o.temperature), "sampling temperature (0.8; 0 = greedy)")(
      "top-k", po::value(&o.top_k), "sample among the k most likely tokens (40; 0 = all)")(
      "seed", po::value(&o.seed), "sampling seed")(
      "tokenizer", po::value(&tok),
      "tokenizer plugin (tokenizer.gpt2; tokenizer.hf with the tokenizer.json of a Hugging Face directory)")(
      "vocab", po::value(&vocab), "tokenizer vocabulary file (tokenizer.hf: its tokenizer.json; default: the tokenizer plugin's)")(
      "merges", po::value(&merges), "BPE merges file (default: the tokenizer plugin's)")(
      "model-plugin", po::value(&model_plugin), "model plugin when the checkpoint does not say");
  d.add_options()("plugin-dir", po::value(&c.plugin_dirs)->composing(), "extra folder of plugin libraries");
  if (!parse(argc, argv, d, nullptr, "usage: scion generate --checkpoint FILE --prompt TEXT [options]")) return 0;
  if (o.max_tokens < 1) throw po::error("--max-tokens " + std::to_string(o.max_tokens) + ": generate at least 1 token");
  if (!(o.temperature >= 0) || !std::isfinite(o.temperature))
    throw po::error("--temperature " + std::to_string(o.temperature) + ": a finite value >= 0 (0 = greedy)");
  if (o.top_k < 0) throw po::error("--top-k " + std::to_string(o.top_k) + ": a count >= 0 (0 = all tokens)");
  PluginRegistry reg = load_registry(c.plugin_dirs);
  auto model = model_from_checkpoint(reg, ckpt, model_plugin);
  const Json cfg = model->config();
  if (cfg.contains("context")) o.context = json_int(cfg.at("context"));
  // A Hugging Face directory brings its tokenizer: tokenizer.hf on its tokenizer.json.
  const std::string dir_tokenizer = ckpt + "/tokenizer.json";
  if (tok.empty() && vocab.empty() && hf::is_model_directory(ckpt) && fs::is_regular_file(dir_tokenizer))
    tok = "tokenizer.hf", vocab = dir_tokenizer;
  if (tok.empty()) tok = "tokenizer.gpt2";
  auto tk = make_tokenizer(reg, tok, vocab, merges);
  check_generates(ckpt, *model, tok, *tk);
  o.stop_id = tk->eot_id();
  auto ids = sample(*model, tk->encode(prompt), o);
  std::cout << tk->decode(ids) << std::endl;
  return 0;
}

int cmd_eval(int argc, char** argv) {
  Common c;
  std::string graph, ckpt, model_node;
  po::options_description d("scion eval options");
  d.add_options()("graph", po::value(&graph)->required(), "graph file (its evaluators and data)")(
      "checkpoint", po::value(&ckpt)->required(), "model .safetensors to evaluate")(
      "model", po::value(&model_node), "model node to load it into (default: the one the last stage trains)");
  add_common(d, c);
  po::positional_options_description pos;
  pos.add("graph", 1);
  if (!parse(argc, argv, d, &pos, "usage: scion eval GRAPH --checkpoint FILE [--model NODE]")) return 0;
  PluginRegistry reg = load_registry(c.plugin_dirs, true);
  GraphSpec g = load_graph_file(graph, c.sets, reg);
  if (model_node.empty())
    for (auto it = g.stages.rbegin(); it != g.stages.rend() && model_node.empty(); ++it)
      if (!it->train.empty()) model_node = it->train.front();
  SCION_CHECK(!model_node.empty(), "eval: name the model node with --model");
  std::vector<std::string> evaluators;
  for (const auto& n : g.nodes)
    if (n.info->entry.kind == PluginKind::evaluator) evaluators.push_back(n.name);
  SCION_CHECK(!evaluators.empty(), "eval: the graph has no evaluator node (add one, e.g. plugin = \"eval.ppl\")");
  // Point the model node at the checkpoint, then build the nodes as a run would.
  std::vector<std::string> sets = c.sets;
  sets.push_back(set_override("nodes." + model_node + ".load", ckpt));
  g = load_graph_file(graph, sets, reg);
  RunOptions o;
  o.progress = 0;
  o.out_dir = (fs::temp_directory_path() / "scion-eval-unused").string();
  Executor ex(g, reg, o);
  Json out;
  out["checkpoint"] = Json(ckpt);
  out["model"] = Json(model_node);
  auto results = ex.evaluate_only(evaluators);  // makes the nodes, trains nothing, writes nothing
  for (const auto& [k, v] : results) out[k.substr(0, k.find('/'))][k.substr(k.find('/') + 1)] = Json(v);
  std::cout << json_dump(out) << std::endl;
  return 0;
}

int cmd_tokenize(int argc, char** argv) {
  Common c;
  std::vector<std::string> inputs;
  std::string out, tok = "tokenizer.gpt2", vocab, merges, bits = "auto";  // empty: the plugin's default
  po::options_description d("scion tokenize options");
  d.add_options()("input", po::value(&inputs)->composing()->required(), "text files or globs (repeatable)")(
      "out", po::value(&out)->required(), "shard file to write (llm.c's format)")(
      "token-bits", po::value(&bits),
      "16 (llm.c's GPT-2 shard, uint16 tokens), 32 (its Llama 3 shard, uint32), or auto: 32 when the vocabulary has "
      "more than 65536 ids (auto)")(
      "tokenizer", po::value(&tok), "tokenizer plugin (tokenizer.gpt2)")(
      "vocab", po::value(&vocab), "vocabulary file (tokenizer.hf: its tokenizer.json; default: the tokenizer plugin's)")(
      "merges", po::value(&merges), "BPE merges file (default: the tokenizer plugin's)");
  d.add_options()("plugin-dir", po::value(&c.plugin_dirs)->composing(), "extra folder of plugin libraries");
  po::positional_options_description pos;
  pos.add("input", -1);
  if (!parse(argc, argv, d, &pos, "usage: scion tokenize FILES... --out SHARD [--tokenizer P] [--token-bits 16|32|auto]")) return 0;
  PluginRegistry reg = load_registry(c.plugin_dirs);
  std::vector<std::string> files;  // in the order given, each pattern's matches sorted
  for (const auto& pattern : inputs)
    for (const auto& f : files::expand({pattern}, "tokenize")) files.push_back(f);
  // Where the shard cannot go (one of the inputs, a run's own file, a device, a directory, a
  // missing or read-only folder, a name too long) is refused before the tokenization, which may
  // take long: the probe creates the temporary file the shard will be written through and
  // removes it.
  files::check_output(out, files, "tokenize");
  { files::AtomicWriter probe(out); }
  auto tk = make_tokenizer(reg, tok, vocab, merges);
  // A vocabulary above 65536 ids (Llama 3's, Qwen's) takes llm.c's uint32 shard; --token-bits 16
  // with such a vocabulary is refused before the tokenization rather than at the first id that
  // does not fit.
  const shards::TokenWidth need = shards::width_for_vocab(tk->vocab_size());
  SCION_CHECK(bits == "auto" || bits == "16" || bits == "32", "tokenize: --token-bits is '", bits,
              "'; expected 16, 32 or auto");
  const shards::TokenWidth width =
      bits == "16" ? shards::TokenWidth::u16 : bits == "32" ? shards::TokenWidth::u32 : need;
  SCION_CHECK(!(width == shards::TokenWidth::u16 && need == shards::TokenWidth::u32), "tokenize: ", tok, " has ",
              tk->vocab_size(), " ids, but --token-bits 16 holds at most 65536 ids (drop it, or --token-bits 32)");
  std::vector<int32_t> all;
  size_t bytes = 0;
  for (const auto& f : files) {
    std::ifstream in(f, std::ios::binary);
    SCION_CHECK(in.good(), "tokenize: cannot open '", f, "'");
    std::string text((std::istreambuf_iterator<char>(in)), {});
    bytes += text.size();
    auto ids = tk->encode(text);
    all.insert(all.end(), ids.begin(), ids.end());
    if (tk->eot_id() >= 0) all.push_back(tk->eot_id());
  }
  shards::write_shard(out, all, width);
  std::printf("%s: %zu tokens from %zu files (%zu bytes), uint%d\n", out.c_str(), all.size(), files.size(), bytes,
              width == shards::TokenWidth::u16 ? 16 : 32);
  return 0;
}

int cmd_report(int argc, char** argv) {
  std::vector<std::string> runs;
  std::string out = "report.html", only, baseline, metric;
  po::options_description d("scion report options");
  d.add_options()("run", po::value(&runs)->composing()->required(), "run directories")(
      "out", po::value(&out), "file to write: .html (a page) or .svg (one picture) (report.html)")(
      "metrics", po::value(&only), "comma-separated metrics to chart, e.g. ppl/loss,loss (all)")(
      "baseline", po::value(&baseline),
      "comma-separated from-scratch runs at several budgets: every other run is priced in the compute they need to "
      "reach its final validation metric")(
      "metric", po::value(&metric), "the validation metric of the summary and the savings (ppl/loss, or the first)");
  po::positional_options_description pos;
  pos.add("run", -1);
  if (!parse(argc, argv, d, &pos,
             "usage: scion report RUN_DIR... --out FILE [--baseline RUN_A,RUN_B,...] [--metric ppl/loss] [--metrics a,b]"))
    return 0;
  auto split = [](const std::string& s) {
    std::vector<std::string> v;
    for (size_t at = 0; !s.empty() && at <= s.size();) {
      const size_t comma = std::min(s.find(',', at), s.size());
      if (comma > at) v.push_back(s.substr(at, comma - at));
      at = comma + 1;
    }
    return v;
  };
  report::Options o;
  o.metrics = split(only);
  o.baseline = split(baseline);
  o.metric = metric;
  const std::string table = report::write(runs, out, o);
  if (!table.empty()) std::printf("%s\n", table.c_str());
  if (o.baseline.empty()) std::printf("wrote %s (%zu runs)\n", out.c_str(), runs.size());
  else std::printf("wrote %s (%zu runs, %zu baselines)\n", out.c_str(), runs.size(), o.baseline.size());
  return 0;
}

// Where this scion looks, for `scion --version`: its prefix, its plugin folders in search
// order, and the data directory graphs' relative paths fall back to.
void print_locations() {
  std::error_code ec;
  auto mark = [&](const std::string& d) { return fs::is_directory(d, ec) ? "" : " (missing)"; };
  std::printf("prefix: %s\nplugin folders, in search order:\n  --plugin-dir folders\n", install_prefix().c_str());
  const auto env = env_plugin_dirs();
  if (env.empty()) std::printf("  $SCION_PLUGIN_PATH (unset)\n");
  for (const auto& d : env) std::printf("  %s%s ($SCION_PLUGIN_PATH)\n", d.c_str(), mark(d));
  for (const auto& d : default_plugin_dirs()) std::printf("  %s%s\n", d.c_str(), mark(d));
  std::printf("data: %s%s (relative paths: the current directory, the graph's directory, then here)\n",
              data_dir().c_str(), mark(data_dir()));
}

}  // namespace

// SIGINT and SIGTERM blocked before any shared library's constructor runs (OpenBLAS starts its
// threads in one), so that no thread ever handles them but the one take_stop_signals starts
// (runtime/stop_signals.h says why).
namespace {
void block_stop_signals_at_load(int, char**, char**) { scion::runtime::block_stop_signals(); }
[[gnu::used, gnu::section(".preinit_array")]] void (*const g_block_stop_signals)(int, char**, char**) =
    block_stop_signals_at_load;
}  // namespace

int main(int argc, char** argv) {
  take_stop_signals();
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h" || std::string(argv[1]) == "help") {
    std::cout << kUsage;
    return argc < 2 ? kExitUsage : 0;
  }
  const std::string cmd = argv[1];
  if (cmd == "--version" || cmd == "version") {
    std::printf("scion %s (SDK ABI %u.%u, %s, CUDA backend %s)\n", SCION_VERSION, kSdkAbiMajor, kSdkAbiMinor,
                SCION_BUILD_FINGERPRINT, cuda_device_count() > 0 ? "with a device" : "without a device");
    print_locations();
    return 0;
  }
  try {
    if (cmd == "run") return cmd_run(argc - 1, argv + 1);
    if (cmd == "validate") return cmd_validate(argc - 1, argv + 1);
    if (cmd == "plugins") return cmd_plugins(argc - 1, argv + 1);
    if (cmd == "generate") return cmd_generate(argc - 1, argv + 1);
    if (cmd == "eval") return cmd_eval(argc - 1, argv + 1);
    if (cmd == "tokenize") return cmd_tokenize(argc - 1, argv + 1);
    if (cmd == "report") return cmd_report(argc - 1, argv + 1);
    if (cmd == "export") return cmd_export(argc - 1, argv + 1);
    if (cmd == "teacher-cache") return cmd_teacher_cache(argc - 1, argv + 1);
    std::cerr << "error: unknown command '" << cmd << "'\n\n" << kUsage;
    return kExitUsage;
  } catch (const GraphError& e) {
    std::cerr << e.what() << "\n";
    return kExitGraph;
  } catch (const NonFiniteError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitNonFinite;
  } catch (const RunDirectoryBusy& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitBusy;
  } catch (const Interrupted& e) {
    std::cerr << "stopped: " << e.what() << "\n";
    return 128 + e.signal();
  } catch (const po::error& e) {
    std::cerr << "error: " << e.what() << " (see scion " << cmd << " --help)\n";
    return kExitUsage;
  } catch (const std::bad_alloc&) {
    // An absurd size (layers, width, a tensor a file declares) used to abort the process.
    std::cerr << "error: out of memory: scion " << cmd
              << " needed more memory than this machine could give (check the sizes in the graph or the file: "
                 "layers, width, vocab, batch_size, seq_len)\n";
    return kExitFailed;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return kExitFailed;
  } catch (...) {
    std::cerr << "error: scion " << cmd << " stopped on an unknown exception\n";
    return kExitFailed;
  }
}
