#include "scion/json.h"

#include <cmath>
#include <limits>
#include <vector>

#include "scion/error.h"

namespace scion {

namespace {

// Non-finite numbers. nlohmann reads only strict JSON (no NaN token) and writes null for a
// non-finite double. Scion writes them as Python's json module does (bare NaN, Infinity,
// -Infinity) so that metrics.jsonl stays readable by Python and keeps a diverged step's value.
// Reading: the bare tokens are rewritten into marker strings, parsed, and the markers turned
// back into doubles. A marker is a string of a control character C plus one letter; C is one
// whose escape does not occur in the text, so no string of the document can equal a marker.

char unused_control(std::string_view text) {
  for (int c = 1; c < 0x20; ++c) {
    char esc[8];
    std::snprintf(esc, sizeof esc, "\\u%04x", c);
    std::string lower = esc, upper = esc;
    for (char& ch : upper) ch = char(std::toupper(static_cast<unsigned char>(ch)));
    upper[1] = 'u';  // the escape letter is always lower case
    if (text.find(lower) == std::string_view::npos && text.find(upper) == std::string_view::npos) return char(c);
  }
  throw Error("JSON: the text escapes every control character; cannot mark its non-finite numbers");
}

std::string marker_text(char c, char kind) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "\"\\u%04x%c\"", c, kind);
  return buf;
}

bool is_word_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; }

// The text with bare NaN / Infinity / -Infinity rewritten; shifts[k] = (end of the k-th
// replacement in the rewritten text, characters added up to there), to map error positions back.
struct Rewritten {
  std::string text;
  std::vector<std::pair<size_t, size_t>> shifts;
  char mark = 0;
};

bool rewrite_non_finite(std::string_view in, Rewritten& out) {
  bool in_string = false;
  out.text.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (in_string) {
      if (c == '\\' && i + 1 < in.size()) out.text += c, out.text += in[++i];
      else out.text += c, in_string = c != '"';
      continue;
    }
    in_string = c == '"';
    size_t len = 0;
    char kind = 0;
    if (i == 0 || !is_word_char(in[i - 1])) {
      for (const auto& [tok, k] : {std::pair<std::string_view, char>{"NaN", 'N'}, {"Infinity", 'I'}, {"-Infinity", '-'}})
        if (in.substr(i, tok.size()) == tok && (i + tok.size() == in.size() || !is_word_char(in[i + tok.size()])))
          len = tok.size(), kind = k;
    }
    if (!len) {
      out.text += c;
      continue;
    }
    if (!out.mark) out.mark = unused_control(in);
    const std::string m = marker_text(out.mark, kind);
    out.text += m;
    out.shifts.emplace_back(out.text.size(), (out.shifts.empty() ? 0 : out.shifts.back().second) + m.size() - len);
    i += len - 1;
  }
  return out.mark != 0;
}

[[noreturn]] void parse_failed(const nlohmann::json::parse_error& e, std::string_view original, const Rewritten* rw,
                               const std::string& source) {
  size_t at = e.byte > 0 ? e.byte - 1 : 0;  // nlohmann: 1-based index of the last character read
  if (rw) {
    size_t added = 0;
    for (const auto& [end, total] : rw->shifts)
      if (end <= at) added = total;
    at = at >= added ? at - added : 0;
  }
  std::string what = e.what();
  // "[json.exception.parse_error.101] parse error at line 3, column 6: syntax error ..." ->
  // the part after the position, which we give ourselves (on the original text).
  const size_t pe = what.find("parse error");
  const size_t colon = pe == std::string::npos ? std::string::npos : what.find(": ", pe);
  if (colon != std::string::npos) what = what.substr(colon + 2);
  if (at >= original.size()) what += " (the text ends before the JSON value does)";
  throw Error(source + ":" + json_position(original, at) + ": " + what);
}

// What the parser refuses beyond syntax (a number too large for a double: out_of_range.406),
// as Scion's error naming the source. nlohmann gives no position for these.
[[noreturn]] void value_failed(const nlohmann::json::exception& e, const std::string& source) {
  std::string what = e.what();
  const size_t close = what.find("] ");
  if (close != std::string::npos) what = what.substr(close + 2);  // drop "[json.exception.out_of_range.406]"
  throw Error(source + ": " + what + " (a number beyond the range of a double)");
}

bool has_non_finite(const Json& j) {
  if (j.is_number_float()) return !std::isfinite(j.get<double>());
  if (j.is_array() || j.is_object())
    for (const Json& e : j)
      if (has_non_finite(e)) return true;
  return false;
}

Json marked(const Json& j, char mark) {
  if (j.is_number_float()) {
    const double v = j.get<double>();
    if (std::isfinite(v)) return j;
    return Json(std::string{mark, std::isnan(v) ? 'N' : (v > 0 ? 'I' : '-')});
  }
  if (j.is_array()) {
    Json out = Json::array();
    for (const Json& e : j) out.push_back(marked(e, mark));
    return out;
  }
  if (j.is_object()) {
    Json out = Json::object();
    for (const auto& [k, v] : j.items()) out[k] = marked(v, mark);
    return out;
  }
  return j;
}

std::string short_dump(const Json& j) {
  std::string s = json_dump(j);
  return s.size() > 80 ? s.substr(0, 77) + "..." : s;
}

}  // namespace

std::string json_position(std::string_view text, size_t offset) {
  size_t line = 1, col = 1;
  for (size_t k = 0; k < offset && k < text.size(); ++k) {
    if (text[k] == '\n') line += 1, col = 1;
    else if ((static_cast<unsigned char>(text[k]) & 0xC0) != 0x80) ++col;  // not a UTF-8 continuation byte
  }
  return std::to_string(line) + ":" + std::to_string(col);
}

Json json_parse(std::string_view text, const std::string& source) {
  Rewritten rw;
  if (!rewrite_non_finite(text, rw)) {
    try {
      return Json::parse(text);
    } catch (const nlohmann::json::parse_error& e) {
      parse_failed(e, text, nullptr, source);
    } catch (const nlohmann::json::exception& e) {
      value_failed(e, source);
    }
  }
  const char mark = rw.mark;
  Json::parser_callback_t back = [mark](int, Json::parse_event_t ev, Json& v) {
    if (ev == Json::parse_event_t::value && v.is_string()) {
      const std::string& s = v.get_ref<const std::string&>();
      if (s.size() == 2 && s[0] == mark)
        v = s[1] == 'N' ? std::numeric_limits<double>::quiet_NaN()
                        : (s[1] == 'I' ? 1.0 : -1.0) * std::numeric_limits<double>::infinity();
    }
    return true;
  };
  try {
    return Json::parse(rw.text, back);
  } catch (const nlohmann::json::parse_error& e) {
    parse_failed(e, text, &rw, source);
  } catch (const nlohmann::json::exception& e) {
    value_failed(e, source);
  }
}

std::string json_dump(const Json& j) {
  // nlohmann writes each double in the shortest form that reads back exactly.
  std::string plain = j.dump();
  if (!has_non_finite(j)) return plain;
  const char mark = unused_control(plain);
  std::string s = marked(j, mark).dump();
  for (const auto& [kind, tok] : {std::pair<char, const char*>{'N', "NaN"}, {'I', "Infinity"}, {'-', "-Infinity"}}) {
    const std::string m = marker_text(mark, kind);
    for (size_t p = s.find(m); p != std::string::npos; p = s.find(m, p)) s.replace(p, m.size(), tok);
  }
  return s;
}

double json_number(const Json& j) {
  SCION_CHECK(j.is_number(), "JSON: expected a number, got ", short_dump(j));
  return j.get<double>();
}

int64_t json_int(const Json& j) {
  if (j.is_number_integer() && !j.is_number_unsigned()) return j.get<int64_t>();
  if (j.is_number_unsigned()) {
    const uint64_t u = j.get<uint64_t>();
    SCION_CHECK(u <= uint64_t(std::numeric_limits<int64_t>::max()), "JSON: integer ", u, " does not fit int64");
    return int64_t(u);
  }
  SCION_CHECK(j.is_number_float(), "JSON: expected an integer, got ", short_dump(j));
  // A double that holds an integer exactly (1e3, 4.0) is one; the range test keeps the cast defined.
  const double v = j.get<double>();
  SCION_CHECK(v == std::floor(v) && v >= -9.223372036854775808e18 && v < 9.223372036854775808e18,
              "JSON: expected an integer, got ", short_dump(j));
  return int64_t(v);
}

bool json_bool(const Json& j) {
  SCION_CHECK(j.is_boolean(), "JSON: expected a boolean, got ", short_dump(j));
  return j.get<bool>();
}

const std::string& json_string(const Json& j) {
  SCION_CHECK(j.is_string(), "JSON: expected a string, got ", short_dump(j));
  return j.get_ref<const std::string&>();
}

const Json::array_t& json_array(const Json& j) {
  SCION_CHECK(j.is_array(), "JSON: expected an array, got ", short_dump(j));
  return j.get_ref<const Json::array_t&>();
}

const Json::object_t& json_object(const Json& j) {
  SCION_CHECK(j.is_object(), "JSON: expected an object, got ", short_dump(j));
  return j.get_ref<const Json::object_t&>();
}

}  // namespace scion
