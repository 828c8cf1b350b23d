// libFuzzer target: the JSON side of a Hugging Face model directory, config.json mapped to a
// Scion model config (plugins/lm/hf_config.h) and model.safetensors.index.json's weight_map
// (hf::parse_index). The input is config.json, a "\n----\n" line, the index. scion::Error
// (and nlohmann's exceptions for text that is not JSON) are the expected refusals. A config
// that is accepted must map back to a config.json that is accepted again as the same plugin
// with the same sizes: the export of an imported model loads.
#include <cstdint>
#include <cstdlib>

#include "fuzz_input.h"
#include "hf_config.h"
#include "scion/hf_directory.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto parts = scion::fuzz::split_parts(data, size, 2);
  using scion::Json;
  try {
    (void)scion::hf::parse_index(scion::json_parse(parts[1], "index"), "index");
  } catch (const std::exception&) {
  }
  Json config;
  try {
    config = scion::json_parse(parts[0], "config.json");
  } catch (const std::exception&) {
    return 0;
  }
  for (bool approximate : {false, true}) {
    scion::lm::HfImported in;
    scion::lm::HfImportOptions options;
    options.approximate_gelu = approximate;
    try {
      in = scion::lm::scion_config_from_hf(config, "config.json", options);
    } catch (const scion::Error&) {
      continue;
    }
    // Accepted: the way back and in again must hold.
    const Json out = scion::lm::hf_config_for(in.plugin, in.config);
    const scion::lm::HfImported again = scion::lm::scion_config_from_hf(out, "exported", options);
    if (again.plugin != in.plugin) std::abort();
    for (const char* k : {"vocab", "context", "layers", "width", "heads", "ffn", "tied"})
      if (again.config.at(k) != in.config.at(k)) std::abort();
  }
  return 0;
}
