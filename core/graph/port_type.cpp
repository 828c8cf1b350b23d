#include "graph/port_type.h"

#include <cctype>

namespace scion::runtime {

namespace {

bool is_identifier(const std::string& s) {
  if (s.empty() || !(std::isalpha((unsigned char)s[0]) || s[0] == '_')) return false;
  for (char c : s)
    if (!(std::isalnum((unsigned char)c) || c == '_')) return false;
  return true;
}

bool is_number(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isdigit((unsigned char)c)) return false;
  return true;
}

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && std::isspace((unsigned char)s[a])) ++a;
  while (b > a && std::isspace((unsigned char)s[b - 1])) --b;
  return s.substr(a, b - a);
}

}  // namespace

DimKind dim_kind(const std::string& d) {
  if (d == "?") return DimKind::any;
  if (is_number(d)) return DimKind::number;
  if (d.size() > 2 && d.front() == '{' && d.back() == '}') return DimKind::param;
  return DimKind::symbol;
}

std::optional<PortType> parse_port_type(const std::string& text) {
  PortType t;
  const size_t colon = text.find(':');
  t.name = trim(text.substr(0, colon));
  if (!is_identifier(t.name)) return std::nullopt;
  if (colon == std::string::npos) return t;
  std::string rest = trim(text.substr(colon + 1));
  const size_t br = rest.find('[');
  t.dtype = trim(rest.substr(0, br));
  if (!t.dtype.empty() && !is_identifier(t.dtype)) return std::nullopt;
  if (br == std::string::npos) return t.dtype.empty() ? std::nullopt : std::optional<PortType>(t);
  if (rest.back() != ']') return std::nullopt;
  t.shaped = true;
  const std::string inner = trim(rest.substr(br + 1, rest.size() - br - 2));
  if (inner.empty()) return t;  // a scalar
  size_t start = 0;
  while (true) {
    const size_t comma = inner.find(',', start);
    const std::string d = trim(inner.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    const bool ok = d == "?" || is_number(d) || is_identifier(d) ||
                    (d.size() > 2 && d.front() == '{' && d.back() == '}' && is_identifier(d.substr(1, d.size() - 2)));
    if (!ok) return std::nullopt;
    t.dims.push_back(d);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return t;
}

}  // namespace scion::runtime
