#include "scion/device.h"

#include "scion/error.h"
#ifdef SCION_HAVE_CUDA
#include "cuda/runtime.h"
#endif

namespace scion {

Device Device::parse(const std::string& s) {
  if (s == "cpu") return cpu();
  if (s == "cuda") return cuda(0);
  if (s.rfind("cuda:", 0) == 0) {
    const std::string idx = s.substr(5);
    if (!idx.empty() && idx.find_first_not_of("0123456789") == std::string::npos)
      return cuda(std::stoi(idx));
  }
  throw Error("unknown device '" + s + "' (expected cpu, cuda or cuda:N)");
}

int cuda_device_count() {
#ifdef SCION_HAVE_CUDA
  return cuda::device_count();
#else
  return 0;
#endif
}

bool cuda_available() { return cuda_device_count() > 0; }

}  // namespace scion
