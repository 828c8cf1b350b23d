// A Hugging Face tokenizer.json read and applied in C++20: BPE models, byte-level (GPT-2,
// Llama 3, Qwen2/3, SmolLM: a Split regex + ByteLevel pre-tokenizer) or SentencePiece-style
// (Llama 2, Mistral: a "▁" normalizer and byte fallback), with the file's added tokens,
// post-processor and decoder. The split patterns run on PCRE2; NFC on ICU.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "scion/plugin.h"

namespace scion::text {

class HfTokenizer final : public scion::Tokenizer {
public:
  struct Options {
    // Add the special tokens the post-processor's template adds (BOS for Llama 2/Mistral),
    // as Hugging Face's encode(text) does by default.
    bool add_special_tokens = true;
    // End-of-text token (its text, e.g. "</s>"); empty: the first of "</s>",
    // "<|end_of_text|>", "<|endoftext|>", "<eos>" among the file's added tokens.
    std::string eos;
  };
  // Throws std::runtime_error naming the file: unreadable, not JSON, or a part of the
  // pipeline this reader does not implement (a Unigram/WordPiece model, a Metaspace
  // pre-tokenizer, ...), with the part named.
  explicit HfTokenizer(const std::filesystem::path& tokenizer_json, Options options);
  explicit HfTokenizer(const std::filesystem::path& tokenizer_json) : HfTokenizer(tokenizer_json, Options{}) {}
  HfTokenizer(HfTokenizer&&) noexcept;
  HfTokenizer& operator=(HfTokenizer&&) noexcept;
  ~HfTokenizer() override;

  // Added tokens (special or not) in the text are matched first and never split; the rest is
  // normalized, pre-tokenized and BPE-encoded. Special tokens are added as Options say.
  // Thread-safe (a sharded, mutex-guarded cache of word encodings).
  std::vector<int32_t> encode(std::string_view text) const override;
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
  // The decoder's text of the ids; special tokens are kept (as their text). Throws
  // std::out_of_range on an id outside the vocabulary.
  std::string decode(std::span<const int32_t> ids) const override;
  // Model vocabulary and added tokens together: the largest id + 1.
  int64_t vocab_size() const override;
  int32_t eot_id() const override;
  // The post-processor's leading special token (Llama 2's <s>), or -1 when it adds none.
  int32_t bos_id() const;
  // The text of a token (its byte-level or "▁" form, as in the file); throws std::out_of_range.
  const std::string& token(int32_t id) const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace scion::text
