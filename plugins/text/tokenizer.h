// Common interface of Scion's text tokenizers (plain C++20, no other Scion dependency).
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace scion::text {

class Tokenizer {
public:
  virtual ~Tokenizer() = default;
  // Token ids of UTF-8 text. Thread-safe (const) on every implementation.
  virtual std::vector<int32_t> encode(std::string_view text) const = 0;
  // Text of a sequence of ids; throws std::out_of_range on an id outside the vocabulary.
  virtual std::string decode(std::span<const int32_t> ids) const = 0;
  virtual std::size_t vocab_size() const = 0;
  // End-of-text / separator id appended between documents, or -1 when there is none.
  virtual int32_t eot_id() const = 0;
};

} // namespace scion::text
