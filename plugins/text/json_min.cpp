#include "json_min.h"

#include <stdexcept>

#include "utf8.h"

namespace scion::text::json {
namespace {

class Reader {
public:
  Reader(std::string_view t, const std::string& src) : t_(t), src_(src) {}

  [[noreturn]] void fail(const std::string& what, const std::string& hint) const {
    std::size_t line = 1, col = 1;
    for (std::size_t k = 0; k < pos_ && k < t_.size(); ++k) {
      if (t_[k] == '\n') { ++line; col = 1; } else if ((static_cast<unsigned char>(t_[k]) & 0xC0) != 0x80) { ++col; }
    }
    throw std::runtime_error(src_ + ":" + std::to_string(line) + ":" + std::to_string(col) + ": " + what +
                             " (" + hint + ")");
  }

  void ws() {
    while (pos_ < t_.size() && (t_[pos_] == ' ' || t_[pos_] == '\t' || t_[pos_] == '\n' || t_[pos_] == '\r')) ++pos_;
  }
  bool eof() const { return pos_ >= t_.size(); }
  char peek() const { return eof() ? '\0' : t_[pos_]; }

  void expect(char c, const char* hint) {
    ws();
    if (peek() != c) {
      std::string what = std::string("expected '") + c + "'";
      what += eof() ? " but the file ends" : std::string(" but found '") + peek() + "'";
      fail(what, hint);
    }
    ++pos_;
  }

  unsigned hex4() {
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = peek();
      unsigned d;
      if (c >= '0' && c <= '9') d = c - '0';
      else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
      else fail("bad \\u escape", "\\u must be followed by four hex digits");
      v = v * 16 + d;
      ++pos_;
    }
    return v;
  }

  std::string string() {
    ws();
    if (peek() != '"') fail(eof() ? "expected a string key but the file ends" : "expected a string key",
                            "keys are double-quoted JSON strings");
    ++pos_;
    std::string out;
    for (;;) {
      if (eof()) fail("unterminated string", "a string key is missing its closing '\"'");
      const char c = t_[pos_];
      if (c == '"') { ++pos_; return out; }
      if (static_cast<unsigned char>(c) < 0x20) fail("raw control character in string", "escape it, e.g. \\n");
      if (c != '\\') { out.push_back(c); ++pos_; continue; }
      ++pos_;
      const char e = peek();
      ++pos_;
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          char32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00) {
            if (peek() != '\\' || pos_ + 1 >= t_.size() || t_[pos_ + 1] != 'u')
              fail("unpaired surrogate", "a \\uD800-\\uDBFF escape must be followed by a low surrogate");
            pos_ += 2;
            const char32_t lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("bad low surrogate", "expected \\uDC00-\\uDFFF");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp < 0xE000) {
            fail("unpaired low surrogate", "\\uDC00-\\uDFFF must follow a high surrogate");
          }
          utf8::append(out, cp);
          break;
        }
        default:
          --pos_;
          fail("unknown escape", "valid escapes are \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX");
      }
    }
  }

  int64_t integer() {
    ws();
    const std::size_t start = pos_;
    bool neg = false;
    if (peek() == '-') { neg = true; ++pos_; }
    if (!(peek() >= '0' && peek() <= '9'))
      fail(eof() ? "expected an integer but the file ends" : "expected an integer value",
           "this reader accepts only objects mapping strings to integers (token -> id)");
    int64_t v = 0;
    while (peek() >= '0' && peek() <= '9') {
      if (v > (INT64_C(1) << 53)) { pos_ = start; fail("integer too large", "ids must fit in 53 bits"); }
      v = v * 10 + (peek() - '0');
      ++pos_;
    }
    if (peek() == '.' || peek() == 'e' || peek() == 'E')
      fail("expected an integer value", "ids must be integers, not floating-point numbers");
    return neg ? -v : v;
  }

  std::size_t pos_ = 0;

private:
  std::string_view t_;
  const std::string& src_;
};

}  // namespace

std::vector<std::pair<std::string, int64_t>> parse_string_int_object(std::string_view text, const std::string& source) {
  Reader r(text, source);
  if (text.size() >= 3 && text.substr(0, 3) == "\xEF\xBB\xBF") r.pos_ = 3;  // UTF-8 BOM
  std::vector<std::pair<std::string, int64_t>> out;
  r.expect('{', "the file must hold one JSON object, e.g. {\"hello\": 31373}");
  r.ws();
  if (r.peek() == '}') {
    ++r.pos_;
  } else {
    for (;;) {
      std::string key = r.string();
      r.expect(':', "a key must be followed by ':' and its integer id");
      const int64_t v = r.integer();
      out.emplace_back(std::move(key), v);
      r.ws();
      if (r.peek() == ',') { ++r.pos_; continue; }
      if (r.peek() == '}') { ++r.pos_; break; }
      r.fail(r.eof() ? "the file ends inside the object" : "expected ',' or '}' after a value",
             "entries are separated by ',' and the object closes with '}'");
    }
  }
  r.ws();
  if (!r.eof()) r.fail("unexpected text after the object", "the file must hold exactly one JSON object");
  return out;
}

}  // namespace scion::text::json
