#include "graph/diagnostics.h"

#include <algorithm>
#include <sstream>

namespace scion::runtime {

namespace {

std::string format(const std::vector<Diagnostic>& d) {
  std::ostringstream os;
  os << d.size() << " problem" << (d.size() == 1 ? "" : "s") << " in the graph:";
  for (const auto& x : d) os << "\n" << format_diagnostic(x, "error");
  return os.str();
}

size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

}  // namespace

std::string format_diagnostic(const Diagnostic& x, const char* kind) {
  std::ostringstream os;
  if (x.pos.line > 0) os << x.pos.file << ":" << x.pos.line << ":" << x.pos.column << ": " << kind << ": " << x.message;
  else os << x.pos.file << ": " << kind << ": " << x.message;
  if (!x.hint.empty()) os << "\n    hint: " << x.hint;
  return os.str();
}

GraphError::GraphError(std::vector<Diagnostic> d) : Error(format(d)), diags_(std::move(d)) {}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_d = std::string::npos;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_d) best_d = d, best = c;
  }
  if (best.empty()) return "";
  const size_t limit = std::max<size_t>(2, word.size() / 3);
  return best_d <= limit ? best : "";
}

}  // namespace scion::runtime
