// Text shared by the report's picture and page: escaping, numbers, percentages, run colours.
#pragma once
#include <cstddef>
#include <string>

namespace scion::report {

std::string esc(const std::string& s);        // escaped for HTML and SVG text and attributes
std::string num(double v, int digits = 4);    // at most `digits` significant digits
std::string exact(double v);                  // the shortest exact form (JSON); "null" when not finite
std::string pct(double v);                    // 0.123 -> "12.3%"
const char* color(size_t i);                  // the i-th run's (or series') colour, in a cycle of ten

}  // namespace scion::report
