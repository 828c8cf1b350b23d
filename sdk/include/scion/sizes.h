// Checked size arithmetic and memory estimates. Every element count and byte count Scion
// derives from sizes a user gave (a graph, a checkpoint's header) goes through these, so an
// absurd size is an Error naming what overflowed, never a product that wraps around and
// allocates too little (then writes past it), nor a size class that loops.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace scion {

// a * b and a + b of non-negative sizes; an Error ("<what>: 3037000500 × 3037000500 does not
// fit in 64 bits ...") when the result does not fit in int64_t, or when an operand is negative.
int64_t checked_mul(int64_t a, int64_t b, const char* what);
int64_t checked_add(int64_t a, int64_t b, const char* what);
// The product of `dims` (1 for none), checked as above.
int64_t checked_product(const std::vector<int64_t>& dims, const char* what);

// The largest block an allocator hands out: 2^48 bytes (256 TiB), more than any machine or
// GPU has; above it no size class exists and the request is refused with an Error.
inline constexpr size_t kMaxBlockBytes = size_t(1) << 48;

// This machine's physical memory in bytes (0 when the system does not say).
double machine_memory_bytes();

// "12.3 GiB"
std::string gib_text(double bytes);

// The problem of a size estimate `bytes` (a model's weights, a data node's buffers) on this
// machine: empty when it fits in its physical memory, else "<what> needs 24.6 GiB<purpose>;
// this machine has 15.5 GiB".
std::string memory_problem(double bytes, const std::string& what, const std::string& purpose = "");

// The weights of a transformer of these sizes, in parameters: per block the attention
// (4·w²) and the MLP (2·w·ffn, or 3·w·ffn for a gated one: SwiGLU's gate, up and down
// matrices) with their biases and norms, plus the token embedding (twice when the head is
// untied) and the positions. An estimate in doubles, so that absurd sizes stay finite.
double transformer_parameters(double layers, double width, double ffn, double vocab, double context, bool tied,
                              bool gated_ffn);

// A data node's buffers, in bytes: a batch of `batch` windows of seq_len + 1 int32 tokens,
// then as int64 tokens and targets; a shuffle buffer of `windows` such windows, each a vector
// (its header and the heap's bookkeeping beside its tokens), held twice while a checkpoint
// writes the stream's position.
double batch_bytes(double batch, double seq_len);
double shuffle_buffer_bytes(double windows, double seq_len);

}  // namespace scion
