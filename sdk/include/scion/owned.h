// Folders Scion owns: a run directory, its checkpoints/ folder, a kNN-LM datastore. Each holds
// a marker file Scion wrote (kMarkerFile, its text "scion <kind>"), so that what Scion moves,
// replaces or deletes is always something it can prove it wrote: an empty folder is adopted
// (the marker is written first), a folder with the marker of its kind is Scion's, and anything
// else is the user's and refused with a hint (docs/reliability.md, "Files Scion owns").
#pragma once
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace scion::owned {

inline constexpr const char* kMarkerFile = ".scion-owned";

// True when `dir` holds the marker of `kind` (a regular file, not a symlink, with its text).
bool has_marker(const std::filesystem::path& dir, std::string_view kind);

// Writes the marker of `kind` into `dir` (a folder Scion is writing, e.g. a datastore built in a
// temporary folder and renamed into place).
void write_marker(const std::filesystem::path& dir, std::string_view kind);

// Recognises a folder that an earlier Scion (before markers) wrote as `kind`: its layout alone.
using EarlierLayout = std::function<bool(const std::filesystem::path&)>;

// Makes `dir` a folder Scion owns as `kind` before anything is written into it: creates it when
// missing, and writes the marker into it when it is empty or when `earlier` recognises an earlier
// Scion's layout; a folder with the marker of `kind` is taken as it is. Anything else is refused
// with scion::Error naming the folder as `what` ("run directory") and a hint: a non-empty folder
// without the marker, the marker of another kind, a path that is not a folder.
void adopt(const std::filesystem::path& dir, std::string_view kind, std::string_view what,
           const EarlierLayout& earlier = {});

// A run directory an earlier Scion (before markers) wrote, by its layout: a graph.toml with
// its metrics.jsonl or checkpoints/ (every run writes them as it starts), or a folder that holds
// nothing but .lock, checkpoints/ and earlier/ (a run that stopped before its graph was written).
bool earlier_scion_run(const std::filesystem::path& dir);

// The folder Scion owns that holds `path` (the nearest folder above it with a marker of any
// kind, or an earlier Scion's run), or nullopt. `path` need not exist; a symlink is followed
// to where it points.
std::optional<std::filesystem::path> owning_folder(const std::filesystem::path& path);

}  // namespace scion::owned
