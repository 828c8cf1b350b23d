#include "scion/json.h"

#include <cmath>
#include <cstdio>

#include "scion/error.h"

namespace scion {

namespace {

class Parser {
 public:
  Parser(std::string_view s, const std::string& what) : s_(s), what_(what) {}

  Json document() {
    Json v = value();
    skip_ws();
    if (i_ != s_.size()) fail("unexpected text after the JSON value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& msg) const {
    size_t line = 1, col = 1;
    for (size_t k = 0; k < i_ && k < s_.size(); ++k) {
      if (s_[k] == '\n') ++line, col = 1;
      else ++col;
    }
    throw Error(what_ + ":" + std::to_string(line) + ":" + std::to_string(col) + ": " + msg);
  }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  char peek() {
    skip_ws();
    if (i_ >= s_.size()) fail("unexpected end of input");
    return s_[i_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  Json value() {
    if (++depth_ > 512) fail("nesting deeper than 512 levels");
    Json out;
    const char c = peek();
    if (c == '{') out = object();
    else if (c == '[') out = array();
    else if (c == '"') out = Json(string());
    else if (c == 't' && s_.substr(i_, 4) == "true") i_ += 4, out = Json(true);
    else if (c == 'f' && s_.substr(i_, 5) == "false") i_ += 5, out = Json(false);
    else if (c == 'n' && s_.substr(i_, 4) == "null") i_ += 4, out = Json(nullptr);
    else if (c == '-' || (c >= '0' && c <= '9')) out = Json(number());
    else fail(std::string("unexpected character '") + c + "'");
    --depth_;
    return out;
  }
  Json object() {
    expect('{');
    Json::Object o;
    if (peek() == '}') {
      ++i_;
      return Json(std::move(o));
    }
    while (true) {
      if (peek() != '"') fail("expected a string key");
      std::string k = string();
      expect(':');
      o[std::move(k)] = value();
      const char c = peek();
      ++i_;
      if (c == '}') break;
      if (c != ',') --i_, fail("expected ',' or '}'");
    }
    return Json(std::move(o));
  }
  Json array() {
    expect('[');
    Json::Array a;
    if (peek() == ']') {
      ++i_;
      return Json(std::move(a));
    }
    while (true) {
      a.push_back(value());
      const char c = peek();
      ++i_;
      if (c == ']') break;
      if (c != ',') --i_, fail("expected ',' or ']'");
    }
    return Json(std::move(a));
  }
  double number() {
    const size_t start = i_;
    if (s_[i_] == '-') ++i_;
    while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.' || s_[i_] == 'e' ||
                              s_[i_] == 'E' || s_[i_] == '+' || s_[i_] == '-'))
      ++i_;
    const std::string tok(s_.substr(start, i_ - start));
    char* end = nullptr;
    const double v = std::strtod(tok.c_str(), &end);
    if (end != tok.c_str() + tok.size()) i_ = start, fail("malformed number '" + tok + "'");
    return v;
  }
  void put_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) out += char(cp);
    else if (cp < 0x800) out += char(0xC0 | (cp >> 6)), out += char(0x80 | (cp & 0x3F));
    else if (cp < 0x10000)
      out += char(0xE0 | (cp >> 12)), out += char(0x80 | ((cp >> 6) & 0x3F)), out += char(0x80 | (cp & 0x3F));
    else
      out += char(0xF0 | (cp >> 18)), out += char(0x80 | ((cp >> 12) & 0x3F)), out += char(0x80 | ((cp >> 6) & 0x3F)),
          out += char(0x80 | (cp & 0x3F));
  }
  uint32_t hex4() {
    if (i_ + 4 > s_.size()) fail("truncated \\u escape");
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= uint32_t(c - '0');
      else if (c >= 'a' && c <= 'f') v |= uint32_t(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= uint32_t(c - 'A' + 10);
      else fail("bad hex digit in \\u escape");
    }
    return v;
  }
  std::string string() {
    expect('"');
    std::string out;
    while (true) {
      if (i_ >= s_.size()) fail("unterminated string");
      const char c = s_[i_++];
      if (c == '"') break;
      if (static_cast<unsigned char>(c) < 0x20) --i_, fail("control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) fail("unterminated escape");
      const char e = s_[i_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00 && i_ + 1 < s_.size() && s_[i_] == '\\' && s_[i_ + 1] == 'u') {
            i_ += 2;
            const uint32_t lo = hex4();
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          put_utf8(out, cp);
          break;
        }
        default: --i_, fail(std::string("unknown escape '\\") + e + "'");
      }
    }
    return out;
  }

  std::string_view s_;
  std::string what_;
  size_t i_ = 0;
  int depth_ = 0;
};

void dump_string(const std::string& s, std::string& out) {
  out += '"';
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", c);
          out += buf;
        } else {
          out += char(c);
        }
    }
  }
  out += '"';
}

void dump_value(const Json& j, std::string& out) {
  if (j.is_null()) out += "null";
  else if (j.is_bool()) out += j.as_bool() ? "true" : "false";
  else if (j.is_number()) {
    const double v = j.as_number();
    if (!std::isfinite(v)) {
      out += std::isnan(v) ? "NaN" : (v > 0 ? "Infinity" : "-Infinity");  // as Python's json writes them
    } else if (v == std::floor(v) && std::fabs(v) < 9.007199254740992e15) {
      out += std::to_string(int64_t(v));
    } else {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.9g", v);
      out += buf;
    }
  } else if (j.is_string()) dump_string(j.as_string(), out);
  else if (j.is_array()) {
    out += '[';
    bool first = true;
    for (const Json& e : j.as_array()) {
      if (!first) out += ',';
      first = false;
      dump_value(e, out);
    }
    out += ']';
  } else {
    out += '{';
    bool first = true;
    for (const auto& [k, v] : j.as_object()) {
      if (!first) out += ',';
      first = false;
      dump_string(k, out);
      out += ':';
      dump_value(v, out);
    }
    out += '}';
  }
}

}  // namespace

Json Json::parse(std::string_view text, const std::string& what) { return Parser(text, what).document(); }

std::string Json::dump() const {
  std::string out;
  dump_value(*this, out);
  return out;
}

bool Json::as_bool() const {
  SCION_CHECK(is_bool(), "JSON: expected a boolean, got ", dump());
  return std::get<bool>(v_);
}
double Json::as_number() const {
  SCION_CHECK(is_number(), "JSON: expected a number, got ", dump());
  return std::get<double>(v_);
}
int64_t Json::as_int() const {
  const double v = as_number();
  SCION_CHECK(v == std::floor(v), "JSON: expected an integer, got ", v);
  return int64_t(v);
}
const std::string& Json::as_string() const {
  SCION_CHECK(is_string(), "JSON: expected a string, got ", dump());
  return std::get<std::string>(v_);
}
const Json::Array& Json::as_array() const {
  SCION_CHECK(is_array(), "JSON: expected an array, got ", dump().substr(0, 80));
  return std::get<Array>(v_);
}
Json::Array& Json::as_array() {
  SCION_CHECK(is_array(), "JSON: expected an array, got ", dump().substr(0, 80));
  return std::get<Array>(v_);
}
const Json::Object& Json::as_object() const {
  SCION_CHECK(is_object(), "JSON: expected an object, got ", dump().substr(0, 80));
  return std::get<Object>(v_);
}
Json::Object& Json::as_object() {
  SCION_CHECK(is_object(), "JSON: expected an object, got ", dump().substr(0, 80));
  return std::get<Object>(v_);
}
bool Json::contains(const std::string& key) const { return is_object() && as_object().count(key) > 0; }
const Json& Json::at(const std::string& key) const {
  const auto& o = as_object();
  auto it = o.find(key);
  SCION_CHECK(it != o.end(), "JSON: missing key '", key, "'");
  return it->second;
}
Json& Json::operator[](const std::string& key) {
  if (is_null()) v_ = Object{};
  return as_object()[key];
}
const Json& Json::at(size_t i) const {
  const auto& a = as_array();
  SCION_CHECK(i < a.size(), "JSON: index ", i, " out of range (", a.size(), " items)");
  return a[i];
}

}  // namespace scion
