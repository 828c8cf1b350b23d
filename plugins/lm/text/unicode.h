// Unicode character classes for the tokenizers, backed by the generated unicode_tables.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace scion::text::unicode {

enum Class : uint16_t {
  kIsLetter = 1,        // \p{L}
  kIsNumber = 2,        // \p{N}
  kIsSpace = 4,         // \s (regex module semantics)
  kIsBertSpace = 8,     // BERT _is_whitespace
  kIsBertControl = 16,  // BERT _is_control
  kIsBertPunct = 32,    // BERT _is_punctuation
  kIsMark = 64,         // category Mn
  kIsCjk = 128,         // BERT _is_chinese_char
  kIsCaseIgnorable = 256,  // Case_Ignorable (Final_Sigma rule)
  kIsCasedOnly = 512,      // Cased and not Case_Ignorable (Final_Sigma rule)
};

// Bit set of Class flags for a code point (a table lookup below U+10000, binary searches
// above). Values > U+10FFFF (e.g. utf8::kInvalid) have no class.
uint16_t classify(char32_t cp);

inline bool is_letter(char32_t cp) { return classify(cp) & kIsLetter; }
inline bool is_number(char32_t cp) { return classify(cp) & kIsNumber; }
inline bool is_space(char32_t cp) { return classify(cp) & kIsSpace; }

// BERT uncased normalisation of one code point: strip_Mn(NFD(lower(cp))) appended to out
// as UTF-8 (Hangul syllables decomposed algorithmically; nothing appended for a mark).
// `final_sigma` selects the word-final form when cp is U+03A3 (see final_sigma()).
void append_bert_fold(std::string& out, char32_t cp, bool final_sigma);

// Python's str.lower() Final_Sigma condition for the capital sigma at word[k]: preceded by
// a cased letter and not followed by one, skipping case-ignorable characters both ways.
bool final_sigma(const char32_t* word, std::size_t n, std::size_t k);

} // namespace scion::text::unicode
