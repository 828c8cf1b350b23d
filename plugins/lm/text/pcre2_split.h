// A split pattern of a Hugging Face pre-tokenizer, compiled with PCRE2 (UTF, Unicode
// properties, JIT when the library has it).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace scion::text {

class Pcre2Split {
public:
  // Throws std::runtime_error with PCRE2's message and offset for a pattern it cannot compile.
  explicit Pcre2Split(const std::string& pattern);
  ~Pcre2Split();
  Pcre2Split(const Pcre2Split&) = delete;
  Pcre2Split& operator=(const Pcre2Split&) = delete;

  // The [begin, end) byte ranges of the non-overlapping matches of the pattern in text, left
  // to right. Invalid UTF-8 is allowed: its bytes are never part of a match. Thread-safe.
  std::vector<std::pair<std::size_t, std::size_t>> matches(std::string_view text) const;

private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace scion::text
