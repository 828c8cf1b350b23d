#include "runtime/checkpoint.h"

#include <zlib.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <set>

#include "scion/checkpoint.h"
#include "scion/error.h"
#include "scion/files.h"
#include "scion/owned.h"

namespace scion::runtime::checkpoint {

namespace fs = std::filesystem;
namespace keys = ::scion::checkpoint;  // the names in checkpoints (scion/checkpoint.h)

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  SCION_CHECK(in.good(), "resume: '", p.string(), "' is missing");
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// The names Scion gives checkpoint folders: step_<N> (complete) and step_<N>.tmp (being
// written), N decimal digits that fit an int64. nullopt for any other name.
struct StepName {
  int64_t step;
  bool tmp;
};
std::optional<StepName> step_name(const std::string& fn) {
  if (fn.rfind("step_", 0) != 0) return std::nullopt;
  std::string digits = fn.substr(5);
  const bool tmp = digits.size() > 4 && digits.compare(digits.size() - 4, 4, ".tmp") == 0;
  if (tmp) digits.resize(digits.size() - 4);
  int64_t n = 0;
  const auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) return std::nullopt;
  return StepName{n, tmp};
}

// A file a checkpoint folder holds: state.json, <x>.safetensors, or the temporary file either
// is written through (<name>.tmp<pid>, files::AtomicWriter).
bool checkpoint_file_name(std::string fn) {
  if (const size_t t = fn.rfind(".tmp"); t != std::string::npos && t + 4 < fn.size() &&
                                         fn.find_first_not_of("0123456789", t + 4) == std::string::npos)
    fn.resize(t);
  return fn == keys::kStateFile || (fn.size() > 12 && fn.compare(fn.size() - 12, 12, ".safetensors") == 0);
}

// A folder Scion can prove it wrote as a checkpoint: named step_<N>[.tmp], a real folder (not
// a symlink), holding only regular files named as a checkpoint's are (step_<N>: state.json
// among them, unless it is empty). Anything else in
// checkpoints/ is the user's: never deleted.
bool scion_checkpoint_folder(const fs::path& dir) {
  std::error_code ec;
  const auto name = step_name(dir.filename().string());
  if (!name || !fs::is_directory(fs::symlink_status(dir, ec))) return false;
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (!fs::is_regular_file(fs::symlink_status(e.path(), ec)) || !checkpoint_file_name(e.path().filename().string()))
      return false;
    ++entries;
  }
  // A complete one has its state.json (written last, before the rename); a killed write may
  // have nothing yet, and an empty folder holds nothing to lose.
  return !ec && (name->tmp || entries == 0 || fs::is_regular_file(fs::symlink_status(dir / keys::kStateFile, ec)));
}

// Once per entry and process: what checkpoints/ holds that Scion did not write, left alone.
void warn_left_alone(const fs::path& p) {
  static std::mutex m;
  static std::set<std::string> warned;
  std::lock_guard<std::mutex> g(m);
  if (warned.insert(p.string()).second)
    std::fprintf(stderr, "warning: %s is not a checkpoint Scion wrote; it is left alone (and never resumed from)\n",
                 p.c_str());
}

// Warns (once) about an entry of checkpoints/ that Scion did not write: anything but its
// checkpoint folders, latest.json (and its temporary file) and the folder's marker.
void warn_if_foreign(const fs::path& p) {
  const std::string fn = p.filename().string();
  if (fn.rfind(keys::kLatestFile, 0) == 0 || fn == owned::kMarkerFile || scion_checkpoint_folder(p)) return;
  warn_left_alone(p);
}

// Removes a checkpoint folder Scion wrote that is in the way (a killed write's .tmp, a
// later-numbered folder of an abandoned timeline); refuses one it did not write.
void remove_own(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(fs::symlink_status(dir, ec))) return;
  SCION_CHECK(scion_checkpoint_folder(dir), "checkpoint: '", dir.string(),
              "' is in the way of the checkpoint being written and holds files Scion did not write, which it does "
              "not delete (hint: move it out of the checkpoints folder)");
  fs::remove_all(dir);
}

// checkpoints/ of an earlier Scion's run (before markers): it holds latest.json or a complete
// checkpoint folder.
bool earlier_scion_checkpoints(const fs::path& root) {
  std::error_code ec;
  if (fs::is_regular_file(fs::symlink_status(root / keys::kLatestFile, ec))) return true;
  for (const auto& d : fs::directory_iterator(root, ec))
    if (scion_checkpoint_folder(d.path()) && !step_name(d.path().filename().string())->tmp &&
        fs::exists(d.path() / keys::kStateFile))
      return true;
  return false;
}

// Keeps `kept` and the newest checkpoint numbered below it. Keeping by number alone would be
// wrong: a later-numbered folder that a kill left unnamed by latest.json would outrank the
// checkpoint just written. Deletes only folders Scion can prove it wrote.
void prune(const fs::path& root, int64_t kept) {
  int64_t previous = -1;
  std::vector<std::pair<int64_t, fs::path>> complete;
  std::vector<fs::path> stale;
  for (const auto& d : fs::directory_iterator(root)) {
    const std::string fn = d.path().filename().string();
    const auto name = step_name(fn);
    if (!name || !scion_checkpoint_folder(d.path())) {
      warn_if_foreign(d.path());
      continue;
    }
    if (name->tmp) {
      stale.push_back(d.path());  // a killed write
      continue;
    }
    complete.emplace_back(name->step, d.path());
    if (name->step < kept) previous = std::max(previous, name->step);
  }
  for (const auto& [k, p] : complete)
    if (k != kept && k != previous) stale.push_back(p);
  for (const auto& p : stale) fs::remove_all(p);
}

// CRC-32 (zlib's, the same checksum as Boost.CRC's crc_32_type, about four times faster: it
// is most of a checkpoint's time) and size of a file, read in 1 MiB pieces.
std::pair<uint32_t, uint64_t> crc_of(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  SCION_CHECK(in.good(), "resume: '", p.string(), "' is missing");
  uLong crc = crc32(0L, Z_NULL, 0);
  std::vector<char> buf(1 << 20);
  uint64_t n = 0;
  while (in) {
    in.read(buf.data(), std::streamsize(buf.size()));
    crc = crc32(crc, reinterpret_cast<const Bytef*>(buf.data()), uInt(in.gcount()));
    n += uint64_t(in.gcount());
  }
  return {uint32_t(crc), n};
}

int64_t counter(const Json& state, const char* key, const fs::path& where) {
  const int64_t v = json_int(state.at(key));
  SCION_CHECK(v >= 0, "resume: '", where.string(), "' has ", key, " = ", v, ", which no run writes (a counter is >= 0)");
  return v;
}
double amount(const Json& state, const char* key, const fs::path& where) {
  const double v = json_number(state.at(key));
  SCION_CHECK(std::isfinite(v) && v >= 0, "resume: '", where.string(), "' has ", key, " = ", v,
              ", which no run writes (a finite amount >= 0)");
  return v;
}

// Reads step_<N>/state.json and checks every file its manifest lists: present, of the size
// and CRC-32 written. A checkpoint from before manifests (no "files") is taken as it is.
Found read_folder(const fs::path& dir) {
  const fs::path sp = dir / keys::kStateFile;
  Json state;
  try {
    state = json_parse(read_text(sp), sp.string());
    Found f;
    f.dir = dir;
    f.counters.step = counter(state, keys::kStep, sp);
    f.counters.stage_index = counter(state, keys::kStageIndex, sp);
    f.counters.stage_step = counter(state, keys::kStageStep, sp);
    f.counters.tokens = amount(state, keys::kTokens, sp);
    f.counters.flops = amount(state, keys::kFlops, sp);
    f.counters.elapsed_s = amount(state, keys::kElapsed, sp);
    if (state.contains(keys::kStageUpdates)) {
      for (const Json& n : json_array(state.at(keys::kStageUpdates))) f.counters.stage_updates.push_back(json_int(n));
      SCION_CHECK(f.counters.stage_updates.size() <= size_t(f.counters.stage_index) + 1 &&
                      std::all_of(f.counters.stage_updates.begin(), f.counters.stage_updates.end(),
                                  [](int64_t n) { return n >= 0; }),
                  "resume: '", sp.string(), "' has ", keys::kStageUpdates,
                  " that no run writes (a count >= 0 for each stage up to stage_index)");
    }
    f.nodes = state.contains(keys::kNodes) ? state.at(keys::kNodes) : Json(Json::object_t{});
    SCION_CHECK(f.nodes.is_object(), "resume: '", sp.string(), "': '", keys::kNodes, "' is not an object");
    if (state.contains(keys::kFiles)) {
      f.manifest = true;
      for (const auto& [file, want] : json_object(state.at(keys::kFiles))) {
        const fs::path fp = dir / file;
        SCION_CHECK(fs::exists(fp), "resume: '", fp.string(), "' is missing, but the checkpoint's manifest (", sp.string(),
                    ") lists it (hint: restore the file, or delete this checkpoint folder to resume from the one before)");
        const auto [crc, bytes] = crc_of(fp);
        SCION_CHECK(bytes == uint64_t(json_int(want.at("bytes"))) && crc == uint32_t(json_int(want.at("crc32"))),
                    "resume: '", fp.string(), "' is corrupted or replaced (", bytes, " bytes, CRC-32 ", crc, "; the manifest says ",
                    json_int(want.at("bytes")), " bytes, CRC-32 ", json_int(want.at("crc32")),
                    ") (hint: delete this checkpoint folder to resume from the one before)");
        f.files.push_back(file);
      }
    }
    return f;
  } catch (const nlohmann::json::exception& e) {
    throw Error("resume: '" + sp.string() + "' is not a Scion checkpoint state: " + e.what());
  }
}

}  // namespace

void write(const fs::path& root, const Contents& c) {
  const std::string name = "step_" + std::to_string(c.counters.step);
  const fs::path tmp = root / (name + ".tmp"), dst = root / name;
  owned::adopt(root, "checkpoints", "checkpoint folder", earlier_scion_checkpoints);
  remove_own(tmp);
  fs::create_directories(tmp);
  for (const TensorFile& f : c.files) safetensors::save((tmp / f.file).string(), f.tensors, f.metadata);
  Json state;
  state[keys::kStep] = Json(c.counters.step);
  state[keys::kStageIndex] = Json(c.counters.stage_index);
  state[keys::kStageStep] = Json(c.counters.stage_step);
  state[keys::kTokens] = Json(c.counters.tokens);
  state[keys::kFlops] = Json(c.counters.flops);
  state[keys::kElapsed] = Json(c.counters.elapsed_s);
  state[keys::kStageUpdates] = Json(c.counters.stage_updates);
  state[keys::kNodes] = c.nodes.is_null() ? Json(Json::object_t{}) : c.nodes;
  // What the checkpoint holds, each file with its size and CRC-32, verified on resume.
  Json manifest = Json::object();
  for (const TensorFile& f : c.files) {
    const auto [crc, bytes] = crc_of(tmp / f.file);
    manifest[f.file] = Json{{"bytes", bytes}, {"crc32", crc}};
  }
  state[keys::kFiles] = manifest;
  files::write_atomic((tmp / keys::kStateFile).string(), json_dump(state) + "\n");
  remove_own(dst);
  fs::rename(tmp, dst);
  Json latest;
  latest[keys::kLatestCheckpoint] = Json(name);
  latest[keys::kLatestStep] = Json(c.counters.step);
  files::write_atomic((root / keys::kLatestFile).string(), json_dump(latest) + "\n");
  prune(root, c.counters.step);
}

bool Found::has(const std::string& file) const {
  return manifest ? std::find(files.begin(), files.end(), file) != files.end() : fs::exists(dir / file);
}

safetensors::Loaded Found::load(const std::string& file) const {
  SCION_CHECK(has(file), "resume: '", (dir / file).string(), "' is missing (the checkpoint does not hold it)");
  return safetensors::load((dir / file).string());
}

std::optional<Found> read_latest(const fs::path& root) {
  std::error_code ec;
  for (const auto& d : fs::directory_iterator(root, ec)) warn_if_foreign(d.path());
  const fs::path lp = root / keys::kLatestFile;
  if (fs::exists(lp)) {
    const Json latest = json_parse(read_text(lp), lp.string());
    SCION_CHECK(latest.is_object() && latest.contains(keys::kLatestCheckpoint) && latest.at(keys::kLatestCheckpoint).is_string(),
                "resume: '", lp.string(), "' does not name a checkpoint folder");
    const std::string name = json_string(latest.at(keys::kLatestCheckpoint));
    const auto step = step_name(name);
    SCION_CHECK(step && !step->tmp && fs::is_directory(root / name),
                "resume: '", lp.string(), "' names '", name, "', which is not a checkpoint folder of ", root.string());
    return read_folder(root / name);
  }
  // No latest.json (deleted, or lost with a disk): the newest complete folder. A complete
  // folder has its state.json (written last, inside the .tmp folder before the rename).
  if (!fs::is_directory(root)) return std::nullopt;
  std::vector<std::pair<int64_t, fs::path>> complete;
  for (const auto& d : fs::directory_iterator(root)) {
    const auto name = step_name(d.path().filename().string());
    if (!name || name->tmp || !scion_checkpoint_folder(d.path())) continue;
    if (fs::exists(d.path() / keys::kStateFile)) complete.emplace_back(name->step, d.path());
  }
  if (complete.empty()) return std::nullopt;
  std::sort(complete.begin(), complete.end());
  std::fprintf(stderr, "warning: %s is missing; resuming from the newest complete checkpoint, %s\n", lp.c_str(),
               complete.back().second.filename().c_str());
  return read_folder(complete.back().second);
}

}  // namespace scion::runtime::checkpoint
