#include "scion/owned.h"

#include <fstream>
#include <string>

#include "scion/error.h"
#include "scion/files.h"

namespace scion::owned {

namespace fs = std::filesystem;

namespace {
// The marker's kind, or "" when `dir` holds no marker (a symlink at its name is none).
std::string marker_kind(const fs::path& dir) {
  std::error_code ec;
  const fs::path m = dir / kMarkerFile;
  if (!fs::is_regular_file(fs::symlink_status(m, ec))) return "";
  std::ifstream in(m, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  if (text.rfind("scion ", 0) != 0 || text.empty() || text.back() != '\n') return "";
  return text.substr(6, text.size() - 7);
}
}  // namespace

bool has_marker(const fs::path& dir, std::string_view kind) { return marker_kind(dir) == kind; }

void write_marker(const fs::path& dir, std::string_view kind) {
  files::write_atomic((dir / kMarkerFile).string(), "scion " + std::string(kind) + "\n");
}

void adopt(const fs::path& dir, std::string_view kind, std::string_view what, const EarlierLayout& earlier) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(dir, ec))) fs::create_directories(dir);
  SCION_CHECK(fs::is_directory(dir, ec), "'", dir.string(), "' cannot be a ", what,
              ": it is not a folder (hint: name a new or empty folder)");
  const std::string found = marker_kind(dir);
  if (found == kind) return;
  SCION_CHECK(found.empty(), "'", dir.string(), "' cannot be a ", what, ": Scion wrote it as a ", found,
              " (its ", kMarkerFile, " says so) (hint: name another folder)");
  const bool empty = fs::is_empty(dir, ec);
  SCION_CHECK(empty || (earlier && earlier(dir)), "'", dir.string(), "' cannot be a ", what,
              ": it is a folder Scion did not write (it is not empty and holds no ", kMarkerFile,
              " marker), and Scion moves or deletes only what it wrote (hint: name a new or empty folder, or move "
              "its files away)");
  write_marker(dir, kind);
}

bool earlier_scion_run(const fs::path& dir) {
  std::error_code ec;
  auto is = [&](const char* n, fs::file_type t) { return fs::symlink_status(dir / n, ec).type() == t; };
  if (is("graph.toml", fs::file_type::regular) &&
      (is("metrics.jsonl", fs::file_type::regular) || is("checkpoints", fs::file_type::directory)))
    return true;
  bool any = false;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n != ".lock" && n != "checkpoints" && n != "earlier") return false;
    any = true;
  }
  return any && !ec;
}

std::optional<fs::path> owning_folder(const fs::path& path) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(path, ec), ec);
  if (ec) return std::nullopt;
  for (fs::path d = fs::is_directory(p, ec) ? p : p.parent_path();; d = d.parent_path()) {
    if (!marker_kind(d).empty() || earlier_scion_run(d)) return d;
    if (d == d.root_path() || d.empty()) return std::nullopt;
  }
}

}  // namespace scion::owned
