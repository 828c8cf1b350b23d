#include "wordpiece.h"

#include <fstream>
#include <functional>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include "unicode.h"
#include "utf8.h"

namespace scion::text {
namespace {

struct SvHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, SvHash, std::equal_to<>>;

constexpr std::size_t kMaxChars = 100;

}  // namespace

struct WordPiece::Impl {
  std::vector<std::string> tokens;
  TokenMap initial;       // "word" -> id
  TokenMap continuation;  // "piece" (without ##) -> id
  TokenMap all;           // exact vocab.txt entries
  bool lower = true;

  template <class F> void basic(std::string_view text, F&& emit_word) const;
  void wordpiece(std::string_view word, int32_t unk, std::vector<int32_t>& out) const;
};

// Calls emit_word(std::string_view) for every word of BERT's BasicTokenizer.
template <class F>
void WordPiece::Impl::basic(std::string_view text, F&& emit_word) const {
  // Pass 1: code points of one whitespace-delimited token at a time (after cleaning and
  // CJK splitting, which only ever insert token boundaries).
  std::vector<char32_t> tok;
  std::string norm;
  auto flush = [&]() {
    if (tok.empty()) return;
    // normalise (lower + NFD + strip Mn) then split on punctuation
    norm.clear();
    std::size_t word_start = 0;
    auto end_word = [&]() {
      if (norm.size() > word_start) emit_word(std::string_view(norm).substr(word_start));
    };
    for (std::size_t k = 0; k < tok.size(); ++k) {
      const char32_t cp = tok[k];
      std::size_t before = norm.size();
      if (lower) {
        const bool final_sigma = cp == 0x3A3 && unicode::final_sigma(tok.data(), tok.size(), k);
        unicode::append_bert_fold(norm, cp, final_sigma);
      } else {
        utf8::append(norm, cp);
      }
      // punctuation splitting runs on the normalised characters
      for (std::size_t p = before; p < norm.size();) {
        std::size_t len;
        const char32_t c = utf8::decode(norm, p, len);
        if (unicode::classify(c) & unicode::kIsBertPunct) {
          if (p > word_start) emit_word(std::string_view(norm).substr(word_start, p - word_start));
          emit_word(std::string_view(norm).substr(p, len));
          word_start = p + len;
        }
        p += len;
      }
    }
    end_word();
    tok.clear();
  };
  for (std::size_t i = 0; i < text.size();) {
    std::size_t len;
    const char32_t cp = utf8::decode(text, i, len);
    i += len;
    if (cp == utf8::kInvalid || cp == 0 || cp == 0xFFFD) continue;
    const uint16_t c = unicode::classify(cp);
    if (c & unicode::kIsBertControl) continue;
    if (c & (unicode::kIsBertSpace | unicode::kIsSpace)) { flush(); continue; }
    if (c & unicode::kIsCjk) {
      flush();
      tok.push_back(cp);
      flush();
      continue;
    }
    tok.push_back(cp);
  }
  flush();
}

void WordPiece::Impl::wordpiece(std::string_view word, int32_t unk, std::vector<int32_t>& out) const {
  // character boundaries of the word
  thread_local std::vector<std::size_t> bounds;
  bounds.clear();
  for (std::size_t i = 0; i < word.size();) {
    bounds.push_back(i);
    std::size_t len;
    utf8::decode(word, i, len);
    i += len;
  }
  const std::size_t n = bounds.size();
  bounds.push_back(word.size());
  if (n > kMaxChars) { out.push_back(unk); return; }
  const std::size_t mark = out.size();
  std::size_t start = 0;
  while (start < n) {
    const TokenMap& map = start == 0 ? initial : continuation;
    int32_t found = -1;
    std::size_t end = n;
    for (; end > start; --end) {
      auto it = map.find(word.substr(bounds[start], bounds[end] - bounds[start]));
      if (it != map.end()) { found = it->second; break; }
    }
    if (found < 0) {
      out.resize(mark);
      out.push_back(unk);
      return;
    }
    out.push_back(found);
    start = end;
  }
}

WordPiece::WordPiece(const std::filesystem::path& vocab, bool lower_case) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.lower = lower_case;
  const std::string src = vocab.string();
  std::ifstream f(vocab, std::ios::binary);
  if (!f) {
    throw std::runtime_error(src + ": cannot open vocabulary" +
                             (std::filesystem::exists(vocab) ? " (permission denied?)" : " (no such file)"));
  }
  std::ostringstream ss;
  ss << f.rdbuf();
  const std::string text = ss.str();
  std::size_t line_no = 0;
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string_view line(text.data() + pos, eol - pos);
    pos = eol + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto where = src + ":" + std::to_string(line_no) + ": ";
    if (line.empty()) {
      throw std::runtime_error(where + "empty vocabulary entry (hint: vocab.txt holds one token a line, no blank lines)");
    }
    for (std::size_t i = 0; i < line.size();) {
      std::size_t len;
      if (utf8::decode(line, i, len) == utf8::kInvalid) {
        throw std::runtime_error(where + "invalid UTF-8 at column " + std::to_string(i + 1) +
                                 " (hint: vocab.txt must be UTF-8 text)");
      }
      i += len;
    }
    const auto id = static_cast<int32_t>(m.tokens.size());
    if (!m.all.emplace(std::string(line), id).second) {
      throw std::runtime_error(where + "duplicate token \"" + std::string(line) + "\" (first on line " +
                               std::to_string(m.all.find(line)->second + 1) + ")");
    }
    m.tokens.emplace_back(line);
    if (line.size() > 2 && line.starts_with("##")) m.continuation.emplace(std::string(line.substr(2)), id);
    else m.initial.emplace(std::string(line), id);
  }
  auto get = [&](const char* t) {
    auto it = m.all.find(std::string_view(t));
    return it == m.all.end() ? -1 : it->second;
  };
  pad_ = get("[PAD]");
  unk_ = get("[UNK]");
  cls_ = get("[CLS]");
  sep_ = get("[SEP]");
  mask_ = get("[MASK]");
  if (unk_ < 0) throw std::runtime_error(src + ": vocabulary has no [UNK] token (is this a BERT vocab.txt?)");
}

WordPiece::WordPiece(WordPiece&&) noexcept = default;
WordPiece& WordPiece::operator=(WordPiece&&) noexcept = default;
WordPiece::~WordPiece() = default;

void WordPiece::encode_into(std::string_view text, std::vector<int32_t>& out) const {
  impl_->basic(text, [&](std::string_view w) { impl_->wordpiece(w, unk_, out); });
}

std::vector<int32_t> WordPiece::encode(std::string_view text) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 4 + 4);
  encode_into(text, out);
  return out;
}

std::vector<std::string> WordPiece::basic_tokenize(std::string_view text) const {
  std::vector<std::string> out;
  impl_->basic(text, [&](std::string_view w) { out.emplace_back(w); });
  return out;
}

std::string WordPiece::decode(std::span<const int32_t> ids) const {
  std::string out;
  for (int32_t id : ids) {
    const std::string& t = token(id);
    if (t.size() > 2 && t.starts_with("##") && !out.empty()) {
      out.append(t, 2);
    } else {
      if (!out.empty()) out.push_back(' ');
      out += t;
    }
  }
  return out;
}

const std::string& WordPiece::token(int32_t id) const {
  if (id < 0 || static_cast<std::size_t>(id) >= impl_->tokens.size()) {
    throw std::out_of_range("WordPiece: token id " + std::to_string(id) + " outside the vocabulary (size " +
                            std::to_string(impl_->tokens.size()) + ")");
  }
  return impl_->tokens[id];
}

int32_t WordPiece::token_id(std::string_view t) const {
  auto it = impl_->all.find(t);
  return it == impl_->all.end() ? -1 : it->second;
}

int64_t WordPiece::vocab_size() const { return int64_t(impl_->tokens.size()); }

}  // namespace scion::text
