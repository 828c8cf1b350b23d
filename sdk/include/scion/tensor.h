// Tensor: a reference-counted handle to device storage plus shape, strides, dtype and
// autograd state. Copies of a Tensor share everything (like torch.Tensor); views share the
// storage with different shape/strides/offset.
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "scion/device.h"
#include "scion/dtype.h"
#include "scion/error.h"

namespace scion {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

std::string shape_str(const Shape& s);  // "[2, 3, 4]"
int64_t shape_numel(const Shape& s);
Strides contiguous_strides(const Shape& s);

// A block of device memory from the device's caching allocator.
class Storage {
 public:
  Storage(size_t bytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
};

namespace autograd {
struct Node;
}

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in elements
  Shape shape;
  Strides strides;
  DType dtype = DType::f32;
  bool requires_grad = false;
  std::shared_ptr<autograd::Node> grad_fn;  // set on outputs of recorded ops
  std::shared_ptr<TensorImpl> grad;          // accumulated gradient of a leaf
  uint64_t version = 0;                      // bumped by in-place writes
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories -----------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::f32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::f32,
                     Device device = Device::cpu());
  static Tensor from_vector(const std::vector<float>& values, const Shape& shape,
                            Device device = Device::cpu());
  static Tensor from_vector_i64(const std::vector<int64_t>& values, const Shape& shape,
                                Device device = Device::cpu());
  static Tensor from_vector_i32(const std::vector<int32_t>& values, const Shape& shape,
                                Device device = Device::cpu());
  static Tensor scalar(float v, Device device = Device::cpu());
  static Tensor arange(int64_t n, DType dtype = DType::i64, Device device = Device::cpu());
  // Seeded random tensors: element i depends only on (seed, i), so the bits are the same
  // whatever the thread count or device.
  static Tensor randn(const Shape& shape, uint64_t seed, float mean = 0.f, float std = 1.f,
                      Device device = Device::cpu());
  static Tensor rand(const Shape& shape, uint64_t seed, float lo = 0.f, float hi = 1.f,
                     Device device = Device::cpu());
  static Tensor randint(const Shape& shape, uint64_t seed, int64_t lo, int64_t hi,
                        DType dtype = DType::i64, Device device = Device::cpu());

  // ---- metadata -------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Strides& strides() const { return impl().strides; }
  int64_t dim() const { return int64_t(impl().shape.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t numel() const { return shape_numel(impl().shape); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  int64_t offset() const { return impl().offset; }
  bool is_contiguous() const;
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype()); }
  std::string desc() const;  // "f32[2, 3] cpu", used in error messages

  // ---- data access (host pointers only make sense on cpu) ------------------------
  void* raw_data() const;  // pointer to element 0 of this view
  template <class T>
  T* data() const { return static_cast<T*>(raw_data()); }
  float item() const;                     // one-element tensor, any dtype, any device
  std::vector<float> to_vector() const;   // any floating or integer dtype, in logical order
  std::vector<int64_t> to_vector_i64() const;

  // ---- views and copies (recorded by autograd) ---------------------------------------
  Tensor view(const Shape& shape) const;     // contiguous only; one dim may be -1
  Tensor reshape(const Shape& shape) const;  // view when possible, else a copy
  Tensor transpose(int64_t a, int64_t b) const;
  Tensor permute(const std::vector<int64_t>& order) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor contiguous() const;
  Tensor to(DType dtype) const;
  Tensor to(Device device) const;
  Tensor clone() const;
  // Same storage, no autograd history, requires_grad false.
  Tensor detach() const;

  // ---- in-place writes (not recorded by autograd) -----------------------------------
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }
  Tensor& copy_(const Tensor& src);  // same shape; converts dtype and device

  // ---- autograd -------------------------------------------------------------
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& set_requires_grad(bool r);
  Tensor grad() const;  // undefined until a backward pass reaches this leaf
  void set_grad(const Tensor& g);
  void zero_grad();  // drops the gradient (next backward writes a fresh one)
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  // Backward from this tensor. A scalar needs no seed; otherwise pass d(loss)/d(this).
  void backward(const Tensor& seed = Tensor(), bool retain_graph = false) const;

  TensorImpl& impl() const {
    SCION_CHECK(impl_ != nullptr, "use of an undefined Tensor");
    return *impl_;
  }
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

  std::string to_string(int64_t max_per_dim = 6) const;

 private:
  std::shared_ptr<TensorImpl> impl_;
};

std::ostream& operator<<(std::ostream& os, const Tensor& t);

}  // namespace scion
