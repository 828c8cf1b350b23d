// The precision of the CPU backend's matrix products (`[run] precision` in a graph).
// bf16: both inputs of every GEMM are rounded to bf16 and the products are accumulated in
// f32 (oneDNN, AVX512-BF16 where the CPU has it); everything else stays f32 — master weights,
// gradients, optimizer state, LayerNorm statistics, softmax and losses. Results stay the same
// for any thread count. Process-wide; lasts until the next call.
#pragma once
#include <string>

namespace scion {
enum class MatmulPrecision { f32, bf16 };
void set_matmul_precision(MatmulPrecision p);
MatmulPrecision matmul_precision();
MatmulPrecision parse_matmul_precision(const std::string& name);  // "f32" | "bf16", else throws
const char* precision_name(MatmulPrecision p);
}  // namespace scion
