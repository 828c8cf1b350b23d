// Shared checks and helpers for the op implementations.
#pragma once
#include <string>
#include <vector>

#include "ops/backend.h"
#include "scion/autograd.h"
#include "scion/ops.h"
#include "scion/tensor.h"

namespace scion::ops::detail {

// Throws "op: <what> (got ...)".
[[noreturn]] void fail(const char* op, const std::string& what);

// Kernels are picked by device in one place: backend_for(op, {&a, &b, ...}) (ops/backend.h).
void check_dtype(const char* op, const Tensor& t, DType want, const char* role);
void check_float(const char* op, const Tensor& t, const char* role);  // f32 for compute
// Contiguous f32 data of t (a copy only when t is strided), never recorded.
Tensor dense(const Tensor& t);
// i64 index data (converts i32), contiguous, never recorded.
Tensor dense_index(const char* op, const Tensor& t, const char* role);
int64_t wrap_axis(const char* op, int64_t axis, int64_t ndim);
// The same, naming the tensor (dtype, shape, device) in the error.
int64_t wrap_axis(const char* op, int64_t axis, const Tensor& t);
Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b);
// Strides of t seen as broadcast to `out` (0 where t's dimension is 1 or missing).
std::vector<int64_t> broadcast_strides(const Tensor& t, const Shape& out);
Tensor broadcast_to(const Tensor& t, const Shape& out);  // materialised copy
// Typed device pointers of a tensor's data (the table's convention: memory of its device).
template <class T>
T* ptr(const Tensor& t) {
  return static_cast<T*>(t.raw_data());
}
inline float* fptr(const Tensor& t) { return ptr<float>(t); }
// rows x cols f32 at src (leading dim cols) rounded to bf16 in a new compact [rows, cols]
// tensor on dev: the operand copy the bf16 GEMMs (precision = "bf16") read. Its dtype is bf16,
// or f32 holding the rounded values where the backend emulates the bf16 GEMM
// (Backend::bf16_operand_bytes); gemm_bf16_packed takes either as its raw_data().
Tensor bf16_operand(const Backend& be, int64_t rows, int64_t cols, Device dev);  // uninitialised
Tensor bf16_copy(const Backend& be, const float* src, int64_t rows, int64_t cols, Device dev);
// A single value read back to the host (a synchronisation on cuda).
int64_t read_i64(const Tensor& t, int64_t i = 0);

}  // namespace scion::ops::detail
