// libFuzzer target: a run's latest.json and state.json as `--resume` reads them
// (runtime::checkpoint::read_latest). The input is latest.json, a "\n----\n" line,
// state.json; latest.json's folder name is taken as written, so a name that leaves the
// checkpoints folder is tried too. scion::Error / nlohmann's exceptions are the expected
// refusal of a bad file.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>

#include "fuzz_input.h"
#include "runtime/checkpoint.h"
#include "scion/checkpoint.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const fs::path root = [] {
    const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    const fs::path r = base / ("scion_fuzz_ckpt_" + std::to_string(::getpid())) / "checkpoints";
    fs::create_directories(r / "step_1");
    return r;
  }();
  const auto parts = scion::fuzz::split_parts(data, size, 2);
  std::ofstream(root / scion::checkpoint::kLatestFile, std::ios::binary | std::ios::trunc) << parts[0];
  std::ofstream(root / "step_1" / scion::checkpoint::kStateFile, std::ios::binary | std::ios::trunc) << parts[1];
  try {
    const auto found = scion::runtime::checkpoint::read_latest(root);
    if (found) (void)found->has(scion::checkpoint::kOptimizerFile);
  } catch (const std::exception&) {
  }
  return 0;
}
