// tokenizer.bytes, tokenizer.gpt2, tokenizer.wordpiece, tokenizer.hf: the text tokenizers
// (plugins/lm/text), which implement scion::Tokenizer themselves, as nodes.
#include <memory>

#include "byte_tokenizer.h"
#include "graph_facts.h"
#include "gpt2_bpe.h"
#include "hf_tokenizer.h"
#include "scion/plugin.h"
#include "wordpiece.h"

namespace scion::lm {
namespace {

// The text library reports problems as std::runtime_error; nodes report scion::Error.
template <class F>
auto rethrow(const char* who, F&& f) {
  try {
    return f();
  } catch (const scion::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw scion::Error(std::string(who) + ": " + e.what());
  }
}

// The tokenizer's files are loaded at validation (once, graph_facts.h), so a broken vocabulary
// is refused before the run starts rather than when the node is made.
std::vector<GraphProblem> check_loads(const GraphView& g, const GraphNodeView& self) {
  const TokenizerFacts& f = tokenizer_facts(g, self);
  if (f.error.empty()) return {};
  const char* hint = self.plugin == "tokenizer.gpt2" ? "vocab = GPT-2's encoder.json (or vocab.json), merges = its vocab.bpe (or merges.txt)"
                     : self.plugin == "tokenizer.hf" ? "vocab = a Hugging Face tokenizer.json of a BPE model (scripts/fetch-hf-tokenizers.sh fetches Llama 3's, Qwen3's and Mistral's)"
                                                     : "vocab = BERT's vocab.txt, one token a line";
  return {{"vocab", "the tokenizer's files cannot be loaded: " + f.error, hint}};
}

PluginEntry bytes_entry() {
  PluginEntry e;
  e.name = "tokenizer.bytes";
  e.kind = PluginKind::tokenizer;
  e.version = "1.0.0";
  e.description = "UTF-8 bytes as tokens (256 ids, end-of-text 256)";
  e.factory = [](const Params&, const NodeResolver&) {
    return std::make_shared<text::ByteTokenizer>(true);
  };
  return e;
}

PluginEntry gpt2_entry() {
  PluginEntry e;
  e.name = "tokenizer.gpt2";
  e.kind = PluginKind::tokenizer;
  e.version = "1.0.0";
  e.description = "GPT-2 byte-level BPE (encoder.json/vocab.json + vocab.bpe/merges.txt), GPT-2's exact ids";
  e.params = {{"vocab", ParamType::string, Json("data/gpt2/encoder.json"), false, "encoder.json or vocab.json", true},
              {"merges", ParamType::string, Json("data/gpt2/vocab.bpe"), false, "vocab.bpe or merges.txt", true}};
  e.check = check_loads;
  e.factory = [](const Params& p, const NodeResolver&) {
    return rethrow("tokenizer.gpt2", [&] {
      return std::make_shared<text::Gpt2Bpe>(p.string("vocab"), p.string("merges"));
    });
  };
  return e;
}

PluginEntry wordpiece_entry() {
  PluginEntry e;
  e.name = "tokenizer.wordpiece";
  e.kind = PluginKind::tokenizer;
  e.version = "1.0.0";
  e.description = "BERT WordPiece (vocab.txt; lower-casing and accent stripping as bert-base-uncased)";
  e.params = {{"vocab", ParamType::string, Json("data/bert/vocab.txt"), false, "BERT vocab.txt", true},
              {"lower_case", ParamType::boolean, Json(true), false, "lower-case and strip accents (uncased models)"}};
  e.check = check_loads;
  e.factory = [](const Params& p, const NodeResolver&) {
    return rethrow("tokenizer.wordpiece", [&] {
      return std::make_shared<text::WordPiece>(p.string("vocab"), p.boolean("lower_case"));
    });
  };
  return e;
}

PluginEntry hf_entry() {
  PluginEntry e;
  e.name = "tokenizer.hf";
  e.kind = PluginKind::tokenizer;
  e.version = "1.0.0";
  e.description = "a Hugging Face tokenizer.json of a BPE model: byte-level (Llama 3, Qwen2/3, GPT-2, SmolLM) or "
                  "SentencePiece-style with byte fallback (Llama 2, Mistral); its added tokens, post-processor and decoder";
  e.params = {{"vocab", ParamType::string, Json(), true, "the tokenizer.json file (`scion tokenize --vocab FILE`)", true},
              {"add_special_tokens", ParamType::boolean, Json(true), false,
               "add the special tokens the file's post-processor adds (Llama 2/Mistral: <s> first), as Hugging Face does"},
              {"eos", ParamType::string, Json(""), false,
               "end-of-text token appended between documents (empty: the first of </s>, <|end_of_text|>, <|endoftext|>, <eos> among its added tokens)"}};
  e.check = check_loads;
  e.factory = [](const Params& p, const NodeResolver&) {
    return rethrow("tokenizer.hf", [&] {
      return std::make_shared<text::HfTokenizer>(p.string("vocab"),
                                                 text::HfTokenizer::Options{p.boolean("add_special_tokens"), p.string("eos")});
    });
  };
  return e;
}

}  // namespace
}  // namespace scion::lm

using scion::lm::bytes_entry;
using scion::lm::gpt2_entry;
using scion::lm::hf_entry;
using scion::lm::wordpiece_entry;
SCION_REGISTER_PLUGIN(bytes_entry)
SCION_REGISTER_PLUGIN(gpt2_entry)
SCION_REGISTER_PLUGIN(hf_entry)
SCION_REGISTER_PLUGIN(wordpiece_entry)
