// libFuzzer target: a run's metrics.jsonl (and graph.toml) as `scion report` reads them. The
// input is metrics.jsonl, a "\n----\n" line, graph.toml; the report is written as a page and
// as a picture. scion::Error (a run without metrics, an unknown metric) is an expected
// refusal; a bad line must be skipped, never a crash.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>

#include "fuzz_input.h"
#include "scion/error.h"
#include "report/report.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const fs::path dir = [] {
    const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    const fs::path d = base / ("scion_fuzz_report_" + std::to_string(::getpid()));
    fs::create_directories(d / "run");
    return d;
  }();
  const auto parts = scion::fuzz::split_parts(data, size, 2);
  std::ofstream(dir / "run" / "metrics.jsonl", std::ios::binary | std::ios::trunc) << parts[0];
  if (parts[1].empty()) fs::remove(dir / "run" / "graph.toml");
  else std::ofstream(dir / "run" / "graph.toml", std::ios::binary | std::ios::trunc) << parts[1];
  const std::string out = (dir / (size % 2 ? "r.svg" : "r.html")).string();
  try {
    scion::report::Options o;
    (void)scion::report::write({(dir / "run").string()}, out, o);
  } catch (const scion::Error&) {
  }
  return 0;
}
