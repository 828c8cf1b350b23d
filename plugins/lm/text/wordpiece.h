// BERT's WordPiece tokenizer (uncased BasicTokenizer + greedy longest-match WordPiece).
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

class WordPiece final : public scion::Tokenizer {
public:
  // vocab: BERT's vocab.txt, one token a line, id = line number - 1; continuation pieces
  // carry a "##" prefix. Must contain [UNK]. Throws std::runtime_error naming the file and
  // line for an empty or duplicate entry.
  explicit WordPiece(const std::filesystem::path& vocab, bool lower_case = true);
  WordPiece(WordPiece&&) noexcept;
  WordPiece& operator=(WordPiece&&) noexcept;
  ~WordPiece() override;

  // BasicTokenizer: drop NUL/U+FFFD/control characters, whitespace -> space, spaces around
  // CJK ideographs, split on whitespace, lower-case + NFD + drop Mn (when lower_case), split
  // off punctuation; then WordPiece each word: longest vocabulary prefix, then "##" pieces;
  // a word with no tokenisation or longer than max_chars characters becomes [UNK].
  // No [CLS]/[SEP] are added; special-token strings in the text are tokenised as text.
  std::vector<int32_t> encode(std::string_view text) const override;
  void encode_into(std::string_view text, std::vector<int32_t>& out) const;
  // Tokens joined by spaces with " ##" glued, as BERT's convert_tokens_to_string.
  std::string decode(std::span<const int32_t> ids) const override;
  int64_t vocab_size() const override;
  int32_t eot_id() const override { return sep_id(); }  // [SEP] separates documents

  // The BasicTokenizer's words (normalised), before WordPiece.
  std::vector<std::string> basic_tokenize(std::string_view text) const;
  const std::string& token(int32_t id) const;  // throws std::out_of_range
  int32_t token_id(std::string_view token) const;  // -1 when absent

  int32_t pad_id() const { return pad_; }
  int32_t unk_id() const { return unk_; }
  int32_t cls_id() const { return cls_; }
  int32_t sep_id() const { return sep_; }
  int32_t mask_id() const { return mask_; }
  std::size_t max_chars() const { return 100; }

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  int32_t pad_ = -1, unk_ = -1, cls_ = -1, sep_ = -1, mask_ = -1;
};

} // namespace scion::text
