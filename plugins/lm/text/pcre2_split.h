// A split pattern of a Hugging Face pre-tokenizer, compiled with PCRE2 (UTF, Unicode
// properties, JIT when the library has it).
#pragma once
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>

namespace scion::text {

class Pcre2Split {
public:
  // Throws std::runtime_error with PCRE2's message and offset for a pattern it cannot compile.
  explicit Pcre2Split(const std::string& pattern);
  ~Pcre2Split();
  Pcre2Split(const Pcre2Split&) = delete;
  Pcre2Split& operator=(const Pcre2Split&) = delete;

  // Calls emit(begin, end) for the [begin, end) byte range of each non-overlapping match of the
  // pattern in text, left to right, as they are found (no list of matches is built). Invalid
  // UTF-8 is allowed: its bytes are never part of a match. Thread-safe.
  template <class Emit>
  void for_each_match(std::string_view text, Emit&& emit) const {
    each(text, [](void* f, std::size_t b, std::size_t e) { (*static_cast<Emit*>(f))(b, e); }, &emit);
  }

private:
  void each(std::string_view text, void (*emit)(void*, std::size_t, std::size_t), void* state) const;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

} // namespace scion::text
