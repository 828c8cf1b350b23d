#include "ops/common.h"

namespace scion::ops::detail {

void fail(const char* op, const std::string& what) { throw Error(std::string(op) + ": " + what); }

void check_dtype(const char* op, const Tensor& t, DType want, const char* role) {
  if (t.dtype() != want)
    fail(op, std::string(role) + " must be " + dtype_name(want) + ", got " + t.desc());
}

void check_float(const char* op, const Tensor& t, const char* role) {
  if (t.dtype() != DType::f32)
    fail(op, std::string(role) + " must be f32 (the ops compute in f32 on every device; precision = \"bf16\" "
                 "rounds GEMM inputs only), got " + t.desc() + " (convert with .to(DType::f32))");
}

Tensor bf16_operand(const Backend& be, int64_t rows, int64_t cols, Device dev) {
  return Tensor::empty({rows, cols}, be.bf16_operand_bytes() == 2 ? DType::bf16 : DType::f32, dev);
}

Tensor bf16_copy(const Backend& be, const float* src, int64_t rows, int64_t cols, Device dev) {
  Tensor out = bf16_operand(be, rows, cols, dev);
  be.pack_bf16_matrix(src, rows, cols, cols, out.raw_data());
  return out;
}

Tensor dense(const Tensor& t) {
  if (t.is_contiguous()) return t.detach();
  NoGradGuard g;
  return t.detach().contiguous();
}

Tensor dense_index(const char* op, const Tensor& t, const char* role) {
  if (t.dtype() != DType::i64 && t.dtype() != DType::i32)
    fail(op, std::string(role) + " must be i64 or i32, got " + t.desc());
  NoGradGuard g;
  Tensor d = t.detach();
  if (d.dtype() != DType::i64) d = d.to(DType::i64);
  return d.contiguous();
}

int64_t wrap_axis(const char* op, int64_t axis, int64_t ndim) {
  const int64_t a = axis < 0 ? axis + ndim : axis;
  if (a < 0 || a >= ndim)
    fail(op, "axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(ndim));
  return a;
}

int64_t wrap_axis(const char* op, int64_t axis, const Tensor& t) {
  const int64_t ndim = t.dim(), a = axis < 0 ? axis + ndim : axis;
  if (a < 0 || a >= ndim)
    fail(op, "axis " + std::to_string(axis) + " is out of range for " + t.desc() + " (rank " + std::to_string(ndim) +
                 ")");
  return a;
}

Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    const int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      fail(op, "shapes " + shape_str(a) + " and " + shape_str(b) + " cannot be broadcast together");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

std::vector<int64_t> broadcast_strides(const Tensor& t, const Shape& out) {
  std::vector<int64_t> st(out.size(), 0);
  const size_t off = out.size() - t.shape().size();
  for (size_t i = 0; i < t.shape().size(); ++i)
    st[off + i] = t.shape()[i] == 1 ? 0 : t.strides()[i];
  return st;
}

Tensor broadcast_to(const Tensor& t, const Shape& out) {
  Tensor y = Tensor::empty(out, t.dtype(), t.device());
  const auto st = broadcast_strides(t, out);
  backend_of("broadcast_to", t.device())
      .strided_copy(t.raw_data(), t.dtype(), out.data(), st.data(), int(out.size()), y.raw_data(), t.dtype());
  return y;
}

int64_t read_i64(const Tensor& t, int64_t i) {
  if (t.device().is_cpu()) return static_cast<const int64_t*>(t.raw_data())[i];
  return t.narrow(0, i, 1).to(Device::cpu()).to_vector_i64()[0];
}

}  // namespace scion::ops::detail
