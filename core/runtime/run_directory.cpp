#include "runtime/run_directory.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <toml++/toml.h>
#include <vector>

#include "runtime/executor.h"
#include "scion/files.h"
#include "scion/owned.h"

namespace scion::runtime {

namespace fs = std::filesystem;

RunDirectory::~RunDirectory() {
  if (metrics_) std::fclose(metrics_);
  if (lock_fd_ >= 0) ::close(lock_fd_);  // releases the lock
}

void RunDirectory::lock() {
  owned::adopt(dir_, "run", "run directory", owned::earlier_scion_run);
  const fs::path lp = fs::path(dir_) / ".lock";
  lock_fd_ = files::open_to_write(lp.string(), files::Existing::keep);
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    char buf[32] = {0};
    const ssize_t n = ::pread(lock_fd_, buf, sizeof buf - 1, 0);
    ::close(lock_fd_);
    lock_fd_ = -1;
    throw RunDirectoryBusy("run directory '" + dir_ + "' is in use by another scion run" +
                           (n > 0 ? " (pid " + std::string(buf, size_t(n)) + ")" : std::string()) +
                           " (hint: wait for it, or give this run another --out or [run] name)");
  }
  const std::string pid = std::to_string(::getpid());
  if (::ftruncate(lock_fd_, 0) == 0 && ::pwrite(lock_fd_, pid.data(), pid.size(), 0) < 0) {
  }  // the pid is only for the message above
}

void RunDirectory::move_earlier_results() {
  // Results move into earlier/ only when it is Scion's own folder: a symlink there would carry
  // them wherever it points.
  const fs::path into = fs::path(dir_) / "earlier";
  std::error_code ec;
  const fs::file_type kind = fs::symlink_status(into, ec).type();
  SCION_CHECK(kind != fs::file_type::symlink, "cannot move the earlier run's results into '", into.string(),
              "': it is a symlink, which Scion does not follow inside a folder it writes (hint: remove the link)");
  SCION_CHECK(kind == fs::file_type::not_found || kind == fs::file_type::directory, "cannot move the earlier run's results into '",
              into.string(), "': it is ", files::kind_of(into.string()), ", not a folder (hint: remove it)");
  std::vector<fs::path> earlier;
  for (const auto& e : fs::directory_iterator(dir_)) {
    const std::string fn = e.path().filename().string();
    if (fn != ".lock" && fn != "earlier" && fn != owned::kMarkerFile) earlier.push_back(e.path());
  }
  if (earlier.empty()) return;
  char stamp[32];
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  std::strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
  fs::path dst = fs::path(dir_) / "earlier" / stamp;
  for (int k = 2; fs::exists(dst); ++k) dst = fs::path(dir_) / "earlier" / (std::string(stamp) + "-" + std::to_string(k));
  fs::create_directories(dst);
  for (const auto& p : earlier) fs::rename(p, dst / p.filename());
  std::printf("%s: moved the earlier run's results to %s (use --resume to continue a run instead)\n", dir_.c_str(),
              dst.c_str());
}

namespace {
constexpr const char* kRanksLine = "# ranks: ";

// The graph with every data node's per-rank batch_size multiplied by the number of ranks: the
// batches a run trains on, whatever the number of ranks. Unparsable text stays as it is.
std::string with_global_batches(const std::string& text, int64_t world) {
  try {
    toml::table t = toml::parse(text);
    if (auto* nodes = t["nodes"].as_table())
      for (auto&& [name, node] : *nodes)
        if (auto* n = node.as_table()) {
          const auto plugin = (*n)["plugin"].value<std::string>();
          if (auto* b = (*n)["batch_size"].as_integer(); b && plugin && plugin->rfind("data.", 0) == 0)
            *b = b->get() * world;
        }
    std::ostringstream os;
    os << t;
    return os.str();
  } catch (const std::exception&) {
    return text;
  }
}
}  // namespace

void RunDirectory::write_graph(const std::string& resolved_toml, bool resumed, int world) {
  const fs::path gp = fs::path(dir_) / "graph.toml";
  if (resumed && fs::exists(gp)) {
    std::ifstream in(gp, std::ios::binary);
    std::string before((std::istreambuf_iterator<char>(in)), {});
    int64_t before_world = 1;  // a graph.toml without the line was written by one rank
    if (before.rfind(kRanksLine, 0) == 0) {
      before_world = std::max<int64_t>(1, std::atoll(before.c_str() + std::strlen(kRanksLine)));
      before.erase(0, before.find('\n') + 1);
    }
    if (before != resolved_toml &&
        with_global_batches(before, before_world) != with_global_batches(resolved_toml, world))
      std::fprintf(stderr,
                   "warning: %s differs from the graph being resumed; the run continues from its checkpoint, but "
                   "not on the curve an uninterrupted run of either graph would give\n",
                   gp.c_str());
  }
  files::write_atomic(gp.string(), kRanksLine + std::to_string(world) + "\n" + resolved_toml);
}

void RunDirectory::open_metrics(bool resume, int64_t resumed_step) {
  const fs::path mp = fs::path(dir_) / "metrics.jsonl";
  if (resume && fs::exists(mp)) {
    // A FIFO or a device planted there would block the read below (or never end).
    const std::string kind = files::kind_of(mp.string());
    SCION_CHECK(kind == "a regular file", "cannot resume into '", dir_, "': its metrics.jsonl is ", kind,
                ", not a regular file (hint: remove it)");
    // Keep only the lines up to the checkpoint's step: the run continues from there.
    std::ifstream in(mp);
    std::vector<std::string> keep;
    std::string line;
    while (std::getline(in, line)) {
      try {
        if (json_int(json_parse(line).at("step")) <= resumed_step) keep.push_back(line);
      } catch (const std::exception&) {  // a torn last line (the kill came mid-write), not a metric
      }
    }
    in.close();
    std::string all;
    for (const auto& l : keep) all += l + "\n";
    files::write_atomic(mp.string(), all);
  }
  const int fd = files::open_to_write(mp.string(), resume ? files::Existing::append : files::Existing::truncate);
  metrics_ = ::fdopen(fd, "a");
  if (!metrics_) ::close(fd);
  SCION_CHECK(metrics_, "cannot write '", mp.string(), "'");
}

void RunDirectory::log(const Json& line) {
  if (!metrics_) return;
  Json clean = line;
  for (auto& [k, v] : clean.items())
    if (v.is_number_float() && !std::isfinite(v.get<double>())) v = Json();
  const std::string s = json_dump(clean);
  std::fprintf(metrics_, "%s\n", s.c_str());
  std::fflush(metrics_);
}

}  // namespace scion::runtime
