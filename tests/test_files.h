// File helpers every test program shares: a fresh temporary folder, a file's lines or bytes,
// a run's metrics.
#pragma once
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "scion/json.h"

namespace scion::tests {

// A fresh, empty folder of this test process: <tmp>/scion_<tag>_<pid>.
inline std::filesystem::path temp(const std::string& tag) {
  std::filesystem::path p = std::filesystem::temp_directory_path() / ("scion_" + tag + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(p);
  std::filesystem::create_directories(p);
  return p;
}

inline std::vector<std::string> lines(const std::filesystem::path& f) {
  std::ifstream in(f);
  std::vector<std::string> out;
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

inline std::string slurp(const std::filesystem::path& f) {
  std::ifstream in(f, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

// Every line of a run's metrics.jsonl, parsed.
inline std::vector<Json> metrics(const std::filesystem::path& run) {
  std::vector<Json> out;
  for (const std::string& l : lines(run / "metrics.jsonl")) out.push_back(json_parse(l));
  return out;
}

}  // namespace scion::tests
