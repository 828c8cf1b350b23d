#include "runtime/checkpoint.h"

#include <fstream>

#include "scion/checkpoint.h"
#include "scion/error.h"
#include "scion/files.h"

namespace scion::runtime::checkpoint {

namespace fs = std::filesystem;
namespace keys = ::scion::checkpoint;  // the names in checkpoints (scion/checkpoint.h)

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  SCION_CHECK(in.good(), "resume: '", p.string(), "' is missing");
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// Keeps `kept` and the newest checkpoint numbered below it. Keeping by number alone would be
// wrong: a later-numbered folder that a kill left unnamed by latest.json would outrank the
// checkpoint just written.
void prune(const fs::path& root, int64_t kept) {
  int64_t previous = -1;
  std::vector<std::pair<int64_t, fs::path>> complete;
  std::vector<fs::path> stale;
  for (const auto& d : fs::directory_iterator(root)) {
    const std::string fn = d.path().filename().string();
    if (!d.is_directory() || fn.rfind("step_", 0) != 0) continue;
    if (fn.find(".tmp") != std::string::npos) {
      stale.push_back(d.path());  // a killed write
      continue;
    }
    const int64_t k = std::stoll(fn.substr(5));
    complete.emplace_back(k, d.path());
    if (k < kept) previous = std::max(previous, k);
  }
  for (const auto& [k, p] : complete)
    if (k != kept && k != previous) stale.push_back(p);
  for (const auto& p : stale) fs::remove_all(p);
}

}  // namespace

void write(const fs::path& root, const Contents& c) {
  const std::string name = "step_" + std::to_string(c.counters.step);
  const fs::path tmp = root / (name + ".tmp"), dst = root / name;
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  for (const TensorFile& f : c.files) safetensors::save((tmp / f.file).string(), f.tensors, f.metadata);
  Json state;
  state[keys::kStep] = Json(c.counters.step);
  state[keys::kStageIndex] = Json(c.counters.stage_index);
  state[keys::kStageStep] = Json(c.counters.stage_step);
  state[keys::kTokens] = Json(c.counters.tokens);
  state[keys::kFlops] = Json(c.counters.flops);
  state[keys::kElapsed] = Json(c.counters.elapsed_s);
  state[keys::kNodes] = c.nodes.is_null() ? Json(Json::object_t{}) : c.nodes;
  files::write_atomic((tmp / keys::kStateFile).string(), json_dump(state) + "\n");
  fs::remove_all(dst);
  fs::rename(tmp, dst);
  Json latest;
  latest[keys::kLatestCheckpoint] = Json(name);
  latest[keys::kLatestStep] = Json(c.counters.step);
  files::write_atomic((root / keys::kLatestFile).string(), json_dump(latest) + "\n");
  prune(root, c.counters.step);
}

bool Found::has(const std::string& file) const { return fs::exists(dir / file); }

safetensors::Loaded Found::load(const std::string& file) const {
  SCION_CHECK(has(file), "resume: '", (dir / file).string(), "' is missing");
  return safetensors::load((dir / file).string());
}

std::optional<Found> read_latest(const fs::path& root) {
  const fs::path lp = root / keys::kLatestFile;
  if (!fs::exists(lp)) return std::nullopt;
  const Json latest = json_parse(read_text(lp), lp.string());
  Found f;
  f.dir = root / json_string(latest.at(keys::kLatestCheckpoint));
  const fs::path sp = f.dir / keys::kStateFile;
  const Json state = json_parse(read_text(sp), sp.string());
  f.counters.step = json_int(state.at(keys::kStep));
  f.counters.stage_index = json_int(state.at(keys::kStageIndex));
  f.counters.stage_step = json_int(state.at(keys::kStageStep));
  f.counters.tokens = json_number(state.at(keys::kTokens));
  f.counters.flops = json_number(state.at(keys::kFlops));
  f.counters.elapsed_s = json_number(state.at(keys::kElapsed));
  f.nodes = state.contains(keys::kNodes) ? state.at(keys::kNodes) : Json(Json::object_t{});
  return f;
}

}  // namespace scion::runtime::checkpoint
