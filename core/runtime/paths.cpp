#include "runtime/paths.h"

#include <filesystem>

#include "runtime/install.h"
#include "scion/files.h"

namespace scion::runtime {

namespace fs = std::filesystem;

std::vector<PathBase> path_bases(const std::string& graph_file) {
  std::error_code ec;
  const fs::path cwd = fs::current_path(ec);
  std::vector<PathBase> out = {{"", "the current directory (" + cwd.string() + ")"}};
  std::vector<fs::path> seen = {fs::weakly_canonical(cwd, ec)};
  auto add = [&](const fs::path& dir, const std::string& what) {
    if (dir.empty() || !fs::is_directory(dir, ec)) return;
    const fs::path canon = fs::weakly_canonical(dir, ec);
    for (const auto& s : seen)
      if (s == canon) return;
    seen.push_back(canon);
    out.push_back({dir.string(), what + " (" + dir.string() + ")"});
  };
  if (!graph_file.empty()) add(fs::path(graph_file).parent_path(), "the graph's directory");
  add(data_dir(), "Scion's data directory");
  return out;
}

namespace {
// A pattern matches when it names a file or a folder as written (a name may hold a glob's
// characters: `\`, `*`, `[`), when it globs to a regular file, or names a folder (a parameter
// such as data.domains' `root` is a folder of files).
bool matches(const std::string& pattern) {
  std::error_code ec;
  return fs::is_regular_file(pattern, ec) || !files::glob(pattern).empty() || fs::is_directory(pattern, ec);
}
}  // namespace

std::optional<std::string> resolve_path(const std::string& pattern, const std::vector<PathBase>& bases) {
  if (pattern.empty()) return std::nullopt;
  if (fs::path(pattern).is_absolute()) {
    if (!matches(pattern)) return std::nullopt;
    return pattern;
  }
  for (const PathBase& b : bases) {
    // The base is joined as written: a prefix holding glob characters (*, ?, [) is not
    // supported, since the result is also opened as a plain file name.
    const std::string candidate = b.dir.empty() ? pattern : (fs::path(b.dir) / pattern).lexically_normal().string();
    if (matches(candidate)) return candidate;
  }
  return std::nullopt;
}

std::string bases_tried(const std::vector<PathBase>& bases) {
  std::string s;
  for (size_t i = 0; i < bases.size(); ++i) s += (i ? ", " : "") + bases[i].what;
  return s;
}

}  // namespace scion::runtime
