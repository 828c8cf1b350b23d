#include "scion/precision.h"

#include "cpu/cpu_kernels.h"
#include "scion/error.h"

namespace scion {

void set_matmul_precision(MatmulPrecision p) { cpu::set_gemm_bf16(p == MatmulPrecision::bf16); }

MatmulPrecision matmul_precision() { return cpu::gemm_bf16() ? MatmulPrecision::bf16 : MatmulPrecision::f32; }

MatmulPrecision parse_matmul_precision(const std::string& name) {
  if (name == "f32") return MatmulPrecision::f32;
  if (name == "bf16") return MatmulPrecision::bf16;
  throw Error("precision '" + name + "': expected \"f32\" or \"bf16\"");
}

bool matmul_bf16_native() { return cpu::gemm_bf16_native(); }

const char* precision_name(MatmulPrecision p) { return p == MatmulPrecision::bf16 ? "bf16" : "f32"; }

}  // namespace scion
