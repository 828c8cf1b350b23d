// What a teacher cache is matched on: tokenizer, data files, data parameters (scion/teacher_cache.h).
#include <cstdio>

#include "scion/files.h"
#include "scion/plugin.h"
#include "scion/random.h"
#include "scion/teacher_cache.h"

namespace scion::teacher_cache {

std::string tokenizer_hash(const Tokenizer& tok) {
  static constexpr std::string_view kProbe =
      "The quick brown fox jumps over the lazy dog. 0123456789 !?#$%&*()[]{}<>\n\t"
      "Ça déjà vu, naïve façade; Übergrößenträger. 日本語のテキスト 中文 한국어 🙂🚀\n\nA second paragraph.";
  uint64_t h = hash_name(std::to_string(tok.vocab_size()) + "/" + std::to_string(tok.eot_id()));
  for (int32_t id : tok.encode(kProbe)) h = derive_seed(h, uint64_t(uint32_t(id)));
  char out[32];
  std::snprintf(out, sizeof out, "%016llx", (unsigned long long)h);
  return out;
}

Json data_files(const std::vector<std::string>& globs) {
  Json out = Json::array();
  for (const std::string& f : files::expand(globs, "teacher cache")) {
    Json e;
    e["path"] = Json(f);
    e["fingerprint"] = Json(file_fingerprint(f));
    out.push_back(e);
  }
  return out;
}

Json data_params(const Json& params) {
  Json out = Json::object();
  for (const auto& [k, v] : params.items())
    if (k != "valid_files" && k != "domain" && k != "frozen") out[k] = v;
  return out;
}

}  // namespace scion::teacher_cache
