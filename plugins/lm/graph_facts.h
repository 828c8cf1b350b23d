// What the plugins' graph checks (validation) need to know beyond the parameters: a
// tokenizer node's vocabulary (the tokenizer made as the run will make it), a
// checkpoint's model plugin and config (its header only), how many windows some text files
// make. Each is computed once per process for the same inputs (files keyed by size and
// modification time), so `scion validate`, `scion run` and the graph fuzzer pay for it once.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "scion/plugin.h"

namespace scion::lm {

// A tokenizer node's tokenizer as the run will make it (GraphView::tokenizer: the host's node
// factory, whichever library the plugin is in), or why it cannot be made.
struct TokenizerFacts {
  std::shared_ptr<scion::Tokenizer> tokenizer;  // null when `error` says why
  std::string error;
  int64_t vocab() const { return tokenizer ? tokenizer->vocab_size() : -1; }
};
const TokenizerFacts& tokenizer_facts(const GraphView& g, const GraphNodeView& tokenizer_node);

// The tokenizer whose ids reach a model node's `tokens` input: the data node feeding it (through
// prompt nodes) names it with its `tokenizer` parameter. Null when none can be told.
const GraphNodeView* tokenizer_feeding(const GraphView& g, const GraphNodeView& model);

// The model plugin and config a Scion checkpoint records in its header (empty when the file
// is not one of Scion's, e.g. a Hugging Face file), or why its header cannot be read. A
// Hugging Face model directory gives its config.json mapped to Scion's (hf_config.h; the
// weights are not read), or why it is refused (an unsupported architecture, ...).
struct CheckpointFacts {
  std::string plugin;  // "model.gpt"
  Json config;         // null when none
  std::string error;
};
const CheckpointFacts& checkpoint_facts(const std::string& path);

// A model node's vocabulary and context as it will run: from the checkpoint it loads when that
// records a config, else from its parameters; -1 when neither says.
int64_t model_vocab(const GraphNodeView& model);
int64_t model_context(const GraphNodeView& model);

// Whether text files, tokenized by `tok`, make at least one window of seq_len + 1 tokens (what
// a data stream or a validation split needs). Files larger than 256 KiB together are not
// tokenized: they hold far more than a window of any sensible length, and a cheap bound
// (at most two tokens per byte) decides instead.
bool makes_a_window(const std::vector<std::string>& globs, const scion::Tokenizer& tok, int64_t seq_len);

// The vocabulary sizes a model of `model_vocab` may have with a tokenizer of `tok_vocab` ids:
// at least every id, at most padded up to a multiple of 128 (GPT-2's 50257 as 50304).
bool vocab_fits_tokenizer(int64_t model_vocab, int64_t tok_vocab);
int64_t padded_vocab(int64_t tok_vocab);

}  // namespace scion::lm
