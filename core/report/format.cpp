#include "report/format.h"

#include <cmath>
#include <cstdio>

#include "scion/json.h"

namespace scion::report {

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

std::string num(double v, int digits) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

std::string exact(double v) { return std::isfinite(v) ? Json(v).dump() : "null"; }

std::string pct(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100 * v);
  return buf;
}

const char* color(size_t i) {
  static const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                  "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f"};
  return kColors[i % (sizeof kColors / sizeof kColors[0])];
}

}  // namespace scion::report
