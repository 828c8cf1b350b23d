// Where a graph's relative paths are found (docs/graph-reference.md, "Paths"): the current
// directory, then the graph file's directory, then Scion's data directory; and where this
// Scion finds its own plugins and data (runtime/install.h), here from the build tree.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "fixtures.h"
#include "graph/graph.h"
#include "runtime/install.h"
#include "runtime/paths.h"
#include "runtime/registry.h"
#include "scion_cli.h"

using namespace scion::runtime;

namespace {

const PluginRegistry& registry() {
  static PluginRegistry reg = [] {
    PluginRegistry r;
    r.scan({SCION_PLUGIN_DIR, SCION_TEST_PLUGINS});
    return r;
  }();
  return reg;
}

// Runs the test body in `dir` as the current directory, then goes back.
struct InDir {
  fs::path old = fs::current_path();
  explicit InDir(const fs::path& dir) { fs::current_path(dir); }
  ~InDir() { fs::current_path(old); }
};

// A byte-level GPT reading `files` (and `extra` TOML in the data node).
std::string graph(const std::string& files, const std::string& extra = "") {
  return tiny_gpt_graph(
      {.corpus = {.files = files, .keys = extra, .seq_len = 8},
       .model = {.context = 8, .width = 8},
       .stages = "[[stages]]\nname = \"train\"\nsteps = 1\ntrain = [\"model\"]\nlosses = [\"lm\"]\n"});
}

// The same graph with GPT-2's tokenizer, its vocab and merges left to their defaults.
std::string replace_tok(std::string g) {
  for (const auto& [from, to] : std::vector<std::pair<std::string, std::string>>{
           {"plugin = \"tokenizer.bytes\"", "plugin = \"tokenizer.gpt2\""}, {"vocab = 257", "vocab = 50257"}}) {
    const size_t at = g.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    g.replace(at, from.size(), to);
  }
  return g;
}

// A folder with graphs/g.toml (and the files the test puts there) and an empty elsewhere/.
struct Tree {
  fs::path root = temp("paths"), graphs = root / "graphs", elsewhere = root / "elsewhere";
  Tree() {
    fs::create_directories(graphs);
    fs::create_directories(elsewhere);
  }
  ~Tree() { fs::remove_all(root); }
  fs::path write(const fs::path& f, const std::string& text) const {
    fs::create_directories(f.parent_path());
    std::ofstream(f) << text;
    return f;
  }
};

std::vector<Diagnostic> diagnose(const std::string& file) {
  try {
    load_graph_file(file, {}, registry());
  } catch (const GraphError& e) {
    return e.diagnostics();
  }
  return {};
}

}  // namespace

TEST(InstallLayout, TheBuildTreeIsAPrefixWithPluginsAndData) {
  EXPECT_EQ(fs::weakly_canonical(install_prefix()), fs::weakly_canonical(SCION_BINARY_DIR));
  EXPECT_TRUE(fs::is_regular_file(fs::path(data_dir()) / "data/gpt2/encoder.json")) << data_dir();
  EXPECT_TRUE(fs::is_regular_file(fs::path(data_dir()) / "graphs/gpt_pretrain.toml")) << data_dir();
  const auto dirs = default_plugin_dirs();
  ASSERT_FALSE(dirs.empty());
  EXPECT_EQ(fs::weakly_canonical(dirs.back()), fs::weakly_canonical(SCION_PLUGIN_DIR));
}

TEST(InstallLayout, PluginFolderNamedByTheUserComeFirst) {
  ::setenv("SCION_PLUGIN_PATH", "/env/a::/env/b", 1);
  const auto dirs = plugin_search_path({"/flag"});
  ::unsetenv("SCION_PLUGIN_PATH");
  ASSERT_GE(dirs.size(), 4u);
  EXPECT_EQ(dirs[0], "/flag");
  EXPECT_EQ(dirs[1], "/env/a");
  EXPECT_EQ(dirs[2], "/env/b");
  EXPECT_EQ(fs::weakly_canonical(dirs.back()), fs::weakly_canonical(SCION_PLUGIN_DIR));
}

TEST(GraphPaths, ARelativePathIsFoundInTheGraphsDirectoryAndRewritten) {
  Tree t;
  t.write(t.graphs / "corpus/a.txt", "some text to read\n\nanother document\n");
  const fs::path g = t.write(t.graphs / "g.toml", graph("corpus/*.txt"));
  InDir in(t.elsewhere);
  const GraphSpec spec = load_graph_file(g.string(), {}, registry());
  const std::string want = (t.graphs / "corpus/*.txt").string();
  EXPECT_EQ(json_string(json_array(spec.node("corpus")->params.at("files")).at(0)), want);
  EXPECT_NE(spec.resolved_toml.find(want), std::string::npos) << spec.resolved_toml;
}

TEST(GraphPaths, TheCurrentDirectoryComesFirstAndLeavesThePathAsWritten) {
  Tree t;
  t.write(t.graphs / "a.txt", "in the graph's directory\n");
  t.write(t.elsewhere / "a.txt", "in the current directory\n");
  const fs::path g = t.write(t.graphs / "g.toml", graph("a.txt"));
  InDir in(t.elsewhere);
  const GraphSpec spec = load_graph_file(g.string(), {}, registry());
  EXPECT_EQ(json_string(json_array(spec.node("corpus")->params.at("files")).at(0)), "a.txt");
}

TEST(GraphPaths, TheDataDirectoryComesLastForFilesAndTokenizerDefaults) {
  Tree t;
  // data.text's valid_files and eval.ppl's domains (a table of globs) too.
  const fs::path g = t.write(t.graphs / "g.toml",
                             replace_tok(graph("data/corpus/news/train.txt", "valid_files = [\"data/corpus/news/valid.txt\"]\n") +
                                         "\n[nodes.ppl]\nplugin = \"eval.ppl\"\nmodel = \"model\"\ntokenizer = \"tok\"\nseq_len = 8\n"
                                         "domains = { news = \"data/corpus/news/valid.txt\" }\n"));
  InDir in(t.elsewhere);
  const GraphSpec spec = load_graph_file(g.string(), {}, registry());
  const fs::path data = fs::path(data_dir()) / "data";
  EXPECT_EQ(json_string(json_array(spec.node("corpus")->params.at("files")).at(0)), (data / "corpus/news/train.txt").string());
  EXPECT_EQ(json_string(json_array(spec.node("corpus")->params.at("valid_files")).at(0)),
            (data / "corpus/news/valid.txt").string());
  EXPECT_EQ(json_string(spec.node("ppl")->params.at("domains").at("news")), (data / "corpus/news/valid.txt").string());
  // tokenizer.gpt2's vocab and merges are not in the graph: their defaults are found there.
  EXPECT_EQ(json_string(spec.node("tok")->params.at("vocab")), (data / "gpt2/encoder.json").string());
  EXPECT_EQ(json_string(spec.node("tok")->params.at("merges")), (data / "gpt2/vocab.bpe").string());
}

TEST(GraphPaths, AMissingFileNamesEveryBaseTried) {
  Tree t;
  const fs::path g = t.write(t.graphs / "g.toml", graph("nowhere/*.txt"));
  InDir in(t.elsewhere);
  const auto d = diagnose(g.string());
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].pos.line, 7);
  EXPECT_EQ(d[0].pos.column, 9);
  EXPECT_NE(d[0].message.find("'files' in node 'corpus' (data.text): no file matches 'nowhere/*.txt'"), std::string::npos)
      << d[0].message;
  for (const std::string& base : {"the current directory (" + fs::current_path().string() + ")",
                                 "the graph's directory (" + t.graphs.string() + ")",
                                 "Scion's data directory (" + data_dir() + ")"})
    EXPECT_NE(d[0].hint.find(base), std::string::npos) << base << "\n" << d[0].hint;
}

TEST(GraphPaths, ADefaultThatMatchesNowhereIsRefusedAtTheNode) {
  Tree t;
  t.write(t.graphs / "a.txt", "text\n");
  const fs::path g = t.write(t.graphs / "g.toml", graph("a.txt") + "\n[nodes.tok2]\nplugin = \"test.missing_default\"\n");
  InDir in(t.elsewhere);
  const auto d = diagnose(g.string());
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].pos.line, 31);  // [nodes.tok2]
  EXPECT_NE(d[0].message.find("node 'tok2' (test.missing_default): the default of 'vocab', 'no/such/vocab.txt', matches no file"),
            std::string::npos)
      << d[0].message;
  EXPECT_NE(d[0].hint.find("name the file: vocab = \"...\""), std::string::npos) << d[0].hint;
  EXPECT_NE(d[0].hint.find("Scion's data directory (" + data_dir() + ")"), std::string::npos) << d[0].hint;
}

TEST(GraphPaths, AGlobInATableThatMatchesNowhereIsLeftToThePluginsCheck) {
  Tree t;
  t.write(t.graphs / "a.txt", "text longer than one window\n");
  const fs::path g = t.write(t.graphs / "g.toml", graph("a.txt", "stage_files = { train = [\"b/*.txt\"] }\n"));
  InDir in(t.elsewhere);
  const auto d = diagnose(g.string());
  ASSERT_EQ(d.size(), 1u) << (d.size() > 1 ? d[1].message : "");
  EXPECT_NE(d[0].message.find("stage_files.train: no file matches 'b/*.txt'"), std::string::npos) << d[0].message;
  EXPECT_NE(d[0].hint.find("the graph's directory"), std::string::npos) << d[0].hint;
}

TEST(GraphPaths, ResolvePathTriesEachBaseInOrder) {
  Tree t;
  t.write(t.root / "one/x.txt", "1");
  t.write(t.root / "two/x.txt", "2");
  t.write(t.root / "two/y.txt", "2");
  const std::vector<PathBase> bases = {{(t.root / "one").string(), "one"}, {(t.root / "two").string(), "two"}};
  EXPECT_EQ(resolve_path("x.txt", bases), (t.root / "one/x.txt").string());
  EXPECT_EQ(resolve_path("y.txt", bases), (t.root / "two/y.txt").string());
  EXPECT_EQ(resolve_path("*.txt", bases), (t.root / "one/*.txt").string());
  EXPECT_FALSE(resolve_path("z.txt", bases));
  EXPECT_EQ(resolve_path((t.root / "two/y.txt").string(), {}), (t.root / "two/y.txt").string());  // absolute
  EXPECT_FALSE(resolve_path((t.root / "z.txt").string(), bases));
  EXPECT_EQ(bases_tried(bases), "one, two");
}

// `scion tokenize` outside a graph: its tokenizer's default vocabulary from the data directory.
TEST(GraphPaths, TokenizeFindsTheDefaultVocabularyFromAnyDirectory) {
  Tree t;
  t.write(t.elsewhere / "in.txt", "Hello world\n");
  const std::string cmd = "cd " + t.elsewhere.string() + " && " + SCION_EXE + " tokenize in.txt --out s.bin 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  while (p && std::fgets(buf, sizeof buf, p)) out += buf;
  EXPECT_EQ(p ? ::pclose(p) : -1, 0) << out;
  EXPECT_NE(out.find("s.bin: 4 tokens from 1 files"), std::string::npos) << out;  // Hello, " world", \n, end of text
  const std::string bad = "cd " + t.elsewhere.string() + " && " + SCION_EXE + " tokenize in.txt --out s.bin --vocab nope.json 2>&1";
  p = ::popen(bad.c_str(), "r");
  out.clear();
  while (p && std::fgets(buf, sizeof buf, p)) out += buf;
  EXPECT_NE(p ? ::pclose(p) : -1, 0) << out;
  EXPECT_NE(out.find("tokenizer.gpt2: no file matches its vocab 'nope.json' (tried the current directory"), std::string::npos)
      << out;
}
