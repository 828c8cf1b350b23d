// libFuzzer target: a kNN-LM datastore's manifest.json as memory.datastore / eval.knnlm read
// it (scion::memory::read_manifest), then the whole folder through Datastore::open with small
// files beside it, whose sizes and hashes the manifest must match before FAISS reads a byte.
// scion::Error (and nlohmann's exceptions, turned into it by json_parse) is the expected
// refusal of a bad manifest.
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>

#include "datastore.h"
#include "fuzz_input.h"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const fs::path dir = [] {
    const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    const fs::path d = base / ("scion_fuzz_datastore_" + std::to_string(::getpid()));
    fs::create_directories(d);
    std::ofstream(d / "keys.f32", std::ios::binary) << std::string(64, '\1');
    std::ofstream(d / "vals.i32", std::ios::binary) << std::string(16, '\2');
    std::ofstream(d / "index.faiss", std::ios::binary) << std::string(32, '\3');
    return d;
  }();
  std::ofstream(dir / "manifest.json", std::ios::binary | std::ios::trunc)
      << std::string_view(reinterpret_cast<const char*>(data), size);
  try {
    scion::memory::DatastoreInfo info;
    if (scion::memory::read_manifest(dir.string(), info)) (void)scion::memory::Datastore::open(dir.string());
  } catch (const std::exception&) {
  }
  return 0;
}
