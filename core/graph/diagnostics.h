// What is wrong with a graph, and where: every problem is collected with its file:line:column
// and a hint before anything runs or anything is written (docs/graph-reference.md).
#pragma once
#include <string>
#include <vector>

#include "scion/error.h"

namespace scion::runtime {

struct SourcePos {
  std::string file;
  int line = 0, column = 0;  // line 0: no place inside a file (a --set override, an unreadable file)
};

struct Diagnostic {
  SourcePos pos;
  std::string message;
  std::string hint;
};

// "file:line:column: <kind>: message" (and the hint on its own line): how errors and notes
// are printed.
std::string format_diagnostic(const Diagnostic& d, const char* kind);

// Every problem found, in the order found; what() lists them, one located error each.
class GraphError : public Error {
 public:
  explicit GraphError(std::vector<Diagnostic> d);
  const std::vector<Diagnostic>& diagnostics() const { return diags_; }

 private:
  std::vector<Diagnostic> diags_;
};

// Closest candidate by edit distance, or "" when none is close.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);

}  // namespace scion::runtime
