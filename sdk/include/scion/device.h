// Where a tensor lives: the host ("cpu") or one CUDA device ("cuda:N").
#pragma once
#include <string>

namespace scion {

struct Device {
  enum class Kind : uint8_t { cpu, cuda };
  Kind kind = Kind::cpu;
  int index = 0;

  static Device cpu() { return {Kind::cpu, 0}; }
  static Device cuda(int i = 0) { return {Kind::cuda, i}; }
  static Device parse(const std::string& s);  // "cpu", "cuda", "cuda:1"; throws on anything else
  bool is_cpu() const { return kind == Kind::cpu; }
  bool is_cuda() const { return kind == Kind::cuda; }
  std::string str() const { return is_cpu() ? "cpu" : "cuda:" + std::to_string(index); }
  friend bool operator==(const Device&, const Device&) = default;
};

// True when this build has the CUDA backend and a device is present.
bool cuda_available();
int cuda_device_count();

}  // namespace scion
