// Graph fixtures the test programs share: the tiny byte-level GPT that most run and validation
// tests start from, table by table, and the "@DATA@" substitution for graphs that read the
// source tree's data wherever the test runs.
#pragma once
#include <string>

namespace scion::tests {

// `text` with every "@DATA@" replaced by the source tree (SCION_SOURCE_DIR).
inline std::string with_data(std::string text) {
  const std::string mark = "@DATA@";
  for (size_t at; (at = text.find(mark)) != std::string::npos;) text.replace(at, mark.size(), SCION_SOURCE_DIR);
  return text;
}

// ---- the tiny byte-level GPT ----
// A bytes tokenizer "tok"; a data.text node "corpus" over it; a model.gpt of vocabulary 257
// (the 256 bytes and the end of text) on corpus.tokens; a loss.lm "lm" on the model's logits
// and corpus.targets. Each table ends in a newline; tiny_gpt_graph() puts a blank line
// between them.
// Tests assert diagnostics' line numbers on this layout: keep it.

struct Corpus {
  std::string files = "data/corpus/literature/train.txt";  // one path or glob
  std::string valid_files = "";                           // none when empty
  std::string keys = "";  // more keys, before seq_len (stage_files, ...)
  int seq_len = 16, batch_size = 2;
};

struct Gpt {
  std::string name = "model";
  int context = 16, layers = 1, width = 16, heads = 2;
  std::string keys = "";  // more keys, before tokens (dropout, frozen, init_seed, ...)
  std::string tokens = "corpus.tokens";
};

inline std::string tokenizer_table() { return "[nodes.tok]\nplugin = \"tokenizer.bytes\"\n"; }

inline std::string corpus_table(const Corpus& c) {
  return "[nodes.corpus]\nplugin = \"data.text\"\ntokenizer = \"tok\"\nfiles = [\"" + c.files + "\"]\n" +
         (c.valid_files.empty() ? "" : "valid_files = [\"" + c.valid_files + "\"]\n") + c.keys +
         "seq_len = " + std::to_string(c.seq_len) + "\nbatch_size = " + std::to_string(c.batch_size) + "\n";
}

inline std::string gpt_table(const Gpt& g) {
  return "[nodes." + g.name + "]\nplugin = \"model.gpt\"\nvocab = 257\ncontext = " + std::to_string(g.context) +
         "\nlayers = " + std::to_string(g.layers) + "\nwidth = " + std::to_string(g.width) +
         "\nheads = " + std::to_string(g.heads) + "\n" + g.keys + "tokens = \"" + g.tokens + "\"\n";
}

inline std::string lm_table(const std::string& model) {
  return "[nodes.lm]\nplugin = \"loss.lm\"\nlogits = \"" + model + ".logits\"\ntargets = \"corpus.targets\"\n";
}

struct TinyGptGraph {
  std::string head = "";  // what comes before the nodes: a [run] table and a blank line, or nothing
  Corpus corpus = {};
  Gpt model = {};
  std::string nodes = "";   // more node tables, after the loss; each ends in a newline
  std::string stages = "";  // the [[stages]] tables
};

// head, tok, corpus, model, lm, the other nodes and the stages.
inline std::string tiny_gpt_graph(const TinyGptGraph& g) {
  return g.head + tokenizer_table() + "\n" + corpus_table(g.corpus) + "\n" + gpt_table(g.model) + "\n" +
         lm_table(g.model.name) + (g.nodes.empty() ? "" : "\n" + g.nodes) + "\n" + g.stages;
}

}  // namespace scion::tests
