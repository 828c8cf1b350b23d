// How a relative file path (or glob) of a graph is found: the one rule of
// docs/graph-reference.md ("Paths"), used by graph validation and by the commands that read
// files outside a graph (`scion generate`, `scion tokenize`'s tokenizer).
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace scion::runtime {

// A folder a relative path is tried against; `dir` empty means as written (the current
// directory). `what` names it in messages ("the graph's directory").
struct PathBase {
  std::string dir;
  std::string what;
};

// In order: the current directory, the graph file's directory (skipped when `graph_file` is
// empty or its folder is the current one), Scion's data directory (<prefix>/share/scion).
// A folder that is the same as an earlier one is left out.
std::vector<PathBase> path_bases(const std::string& graph_file);

// The pattern as it must be opened: itself when it is absolute or matches a file from the
// current directory, else the first base where it matches joined to it; nullopt when no
// base has a file that matches.
std::optional<std::string> resolve_path(const std::string& pattern, const std::vector<PathBase>& bases);

// "the current directory (/w), the graph's directory (/w/graphs), Scion's data directory
// (/opt/scion/share/scion)": what resolve_path tried, for an error's hint.
std::string bases_tried(const std::vector<PathBase>& bases);

}  // namespace scion::runtime
