// The precision of the CPU backend's matrix products (`[run] precision` in a graph).
// bf16: both inputs of every GEMM are rounded to bf16 and the products are accumulated in
// f32 (oneDNN; emulated in f32 on a CPU without AVX-512, see matmul_bf16_native); everything
// else stays f32 — master weights, gradients, optimizer state, LayerNorm statistics, softmax and losses. Results stay the same
// for any thread count. Process-wide; lasts until the next call.
#pragma once
#include <string>

namespace scion {
enum class MatmulPrecision { f32, bf16 };
void set_matmul_precision(MatmulPrecision p);
MatmulPrecision matmul_precision();
MatmulPrecision parse_matmul_precision(const std::string& name);  // "f32" | "bf16", else throws
const char* precision_name(MatmulPrecision p);
// Whether the CPU multiplies bf16 in hardware (oneDNN's AVX-512 bf16 matmul). Without it (an
// AVX2 CPU, or SCION_CPU_BF16=emulate) precision bf16 emulates its GEMMs in f32: the same
// rounded inputs and f32 accumulation, at about f32's speed (no faster).
bool matmul_bf16_native();
}  // namespace scion
