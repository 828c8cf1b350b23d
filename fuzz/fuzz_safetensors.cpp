// libFuzzer target: safetensors files (header length, JSON header, offsets, dtypes, shapes,
// metadata). A scion::Error naming the file is the expected refusal of a bad file; anything
// else (a crash, a sanitizer report, an allocation far beyond the input's size, a hang) is
// a finding.
#include <cstdint>

#include "fuzz_input.h"
#include "scion/error.h"
#include "scion/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static scion::fuzz::MemFile file("safetensors");
  const std::string& path = file.set({reinterpret_cast<const char*>(data), size});
  try {
    (void)scion::safetensors::load_metadata(path);
  } catch (const scion::Error&) {
  }
  try {
    const auto loaded = scion::safetensors::load(path);
    // Touch every element: a tensor that claims more bytes than were copied shows up here.
    double sum = 0;
    for (const auto& [name, t] : loaded.tensors) sum += double(t.numel()) + double(name.size());
    if (sum < 0) ::abort();
  } catch (const scion::Error&) {
  }
  return 0;
}
