#include "unicode.h"

#include <algorithm>
#include <array>
#include <iterator>

#include "unicode_tables.h"
#include "utf8.h"

namespace scion::text::unicode {
namespace {

template <std::size_t N>
bool in(const Range (&table)[N], char32_t cp) {
  const Range* end = table + N;
  const Range* it = std::upper_bound(table, end, cp, [](char32_t c, const Range& r) { return c < r.lo; });
  return it != table && cp <= (it - 1)->hi;
}

bool is_cjk(char32_t cp) {
  // BERT's _is_chinese_char: the CJK Unified Ideographs blocks, as BERT lists them.
  return (cp >= 0x4E00 && cp <= 0x9FFF) || (cp >= 0x3400 && cp <= 0x4DBF) ||
         (cp >= 0x20000 && cp <= 0x2A6DF) || (cp >= 0x2A700 && cp <= 0x2B73F) ||
         (cp >= 0x2B740 && cp <= 0x2B81F) || (cp >= 0x2B820 && cp <= 0x2CEAF) ||
         (cp >= 0xF900 && cp <= 0xFAFF) || (cp >= 0x2F800 && cp <= 0x2FA1F);
}

uint16_t compute(char32_t cp) {
  uint16_t c = 0;
  if (in(kLetter, cp)) c |= kIsLetter;
  if (in(kNumber, cp)) c |= kIsNumber;
  if (in(kSpace, cp)) c |= kIsSpace;
  if (in(kBertSpace, cp)) c |= kIsBertSpace;
  if (in(kBertControl, cp)) c |= kIsBertControl;
  if (in(kBertPunct, cp)) c |= kIsBertPunct;
  if (in(kMark, cp)) c |= kIsMark;
  if (is_cjk(cp)) c |= kIsCjk;
  if (in(kCaseIgnorable, cp)) c |= kIsCaseIgnorable;
  if (in(kCasedOnly, cp)) c |= kIsCasedOnly;
  return c;
}

struct BmpTable {
  std::array<uint16_t, 0x10000> cls{};
  BmpTable() {
    for (char32_t cp = 0; cp < 0x10000; ++cp) cls[cp] = compute(cp);
  }
};

const BmpTable& bmp() {
  static const BmpTable t;  // built once, thread-safe (magic static)
  return t;
}

}  // namespace

uint16_t classify(char32_t cp) {
  if (cp < 0x10000) return bmp().cls[cp];
  if (cp > 0x10FFFF) return 0;
  return compute(cp);
}

bool final_sigma(const char32_t* word, std::size_t n, std::size_t k) {
  std::size_t j = k;
  while (j > 0 && (classify(word[j - 1]) & kIsCaseIgnorable)) --j;
  if (j == 0 || !(classify(word[j - 1]) & kIsCasedOnly)) return false;
  j = k + 1;
  while (j < n && (classify(word[j]) & kIsCaseIgnorable)) ++j;
  return j == n || !(classify(word[j]) & kIsCasedOnly);
}

void append_bert_fold(std::string& out, char32_t cp, bool final_sigma) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp >= 'A' && cp <= 'Z' ? cp + 32 : cp));
    return;
  }
  if (cp == 0x3A3) {  // GREEK CAPITAL SIGMA: Python's lower() applies the Final_Sigma rule
    utf8::append(out, final_sigma ? 0x3C2 : 0x3C3);
    return;
  }
  if (cp >= 0xAC00 && cp <= 0xD7A3) {  // Hangul syllable: canonical decomposition
    const char32_t s = cp - 0xAC00;
    utf8::append(out, 0x1100 + s / 588);
    utf8::append(out, 0x1161 + (s % 588) / 28);
    if (s % 28) utf8::append(out, 0x11A7 + s % 28);
    return;
  }
  if (classify(cp) & kIsMark) return;
  const Fold* end = kFold + std::size(kFold);
  const Fold* it = std::lower_bound(kFold, end, cp, [](const Fold& f, char32_t c) { return f.cp < c; });
  if (it != end && it->cp == cp) {
    for (int k = 0; k < it->len; ++k) utf8::append(out, kFoldPool[it->offset + k]);
    return;
  }
  utf8::append(out, cp);
}

}  // namespace scion::text::unicode
