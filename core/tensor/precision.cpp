// The matmul precision: process-wide state owned here (scion/precision.h is its SDK view). The
// ops read it and pass it to the kernels with each GEMM (ops/backend.h); the kernels keep none.
#include "scion/precision.h"

#include <atomic>

#include "ops/cpu_engine.h"
#include "scion/error.h"

namespace scion {

namespace {
std::atomic<MatmulPrecision> g_precision{MatmulPrecision::f32};
}  // namespace

void set_matmul_precision(MatmulPrecision p) { g_precision.store(p); }

MatmulPrecision matmul_precision() { return g_precision.load(std::memory_order_relaxed); }

MatmulPrecision parse_matmul_precision(const std::string& name) {
  if (name == "f32") return MatmulPrecision::f32;
  if (name == "bf16") return MatmulPrecision::bf16;
  throw Error("precision '" + name + "': expected \"f32\" or \"bf16\"");
}

bool matmul_bf16_native() { return ops::cpu_bf16_native(); }

const char* precision_name(MatmulPrecision p) { return p == MatmulPrecision::bf16 ? "bf16" : "f32"; }

}  // namespace scion
