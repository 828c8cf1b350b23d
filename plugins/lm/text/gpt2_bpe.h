// GPT-2's byte-level BPE tokenizer (exactly OpenAI's ids), plain C++20.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "scion/plugin.h"

namespace scion::text {

class Gpt2Bpe final : public scion::Tokenizer {
public:
  // vocab: encoder.json (OpenAI) / vocab.json (Hugging Face), a JSON object token -> id.
  // merges: vocab.bpe (OpenAI) / merges.txt (Hugging Face), one "left right" pair a line,
  // best first, optionally after a "#version" line.
  // Throws std::runtime_error naming the file (and line/column for parse errors).
  Gpt2Bpe(const std::filesystem::path& vocab, const std::filesystem::path& merges);
  // Looks in dir for encoder.json or vocab.json, and vocab.bpe or merges.txt.
  static Gpt2Bpe from_dir(const std::filesystem::path& dir);

  Gpt2Bpe(Gpt2Bpe&&) noexcept;
  Gpt2Bpe& operator=(Gpt2Bpe&&) noexcept;
  ~Gpt2Bpe() override;

  // Text is encoded as GPT-2's encoder.py does: "<|endoftext|>" in the text is plain text;
  // append eot_id() yourself between documents. Invalid UTF-8 bytes are kept (each one is
  // a non-letter, non-number, non-space character), so decode(encode(s)) == s for any s.
  // Thread-safe; uses a sharded, mutex-guarded per-instance cache of word encodings.
  std::vector<int32_t> encode(std::string_view text) const override;
  // Appends to out instead of returning a new vector.
  void encode_into(std::string_view text, std::vector<int32_t>& out) const;
  std::string decode(std::span<const int32_t> ids) const override;
  int64_t vocab_size() const override;
  // Id of "<|endoftext|>" (50256 for GPT-2), or -1 if the vocabulary has none.
  int32_t eot_id() const override;

  // GPT-2's pre-tokenisation of text (the pieces its regex finds), for tests and tools.
  std::vector<std::string_view> pretokenize(std::string_view text) const;
  // Raw bytes of a token; throws std::out_of_range for a bad id.
  const std::string& token_bytes(int32_t id) const;
  std::size_t num_merges() const;
  void clear_cache() const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace scion::text
