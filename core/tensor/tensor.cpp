#include "scion/tensor.h"

#include <cstring>
#include <numeric>
#include <sstream>

#include "scion/allocator.h"
#include "scion/autograd.h"
#include "scion/sizes.h"
#include "ops/backend.h"
#ifdef SCION_HAVE_CUDA
#include "cuda/runtime.h"
#endif

namespace scion {

// ---- shapes -----------------------------------------------------------------------------
std::string shape_str(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}
int64_t shape_numel(const Shape& s) { return checked_product(s, "the elements of a tensor"); }
Strides contiguous_strides(const Shape& s) {
  Strides st(s.size());
  int64_t acc = 1;
  for (size_t i = s.size(); i-- > 0;) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

// ---- storage ------------------------------------------------------------------------------
Storage::Storage(size_t bytes, Device device) : bytes_(bytes), device_(device) {
  data_ = allocator_for(device).allocate(bytes);
}
Storage::~Storage() { allocator_for(device_).deallocate(data_, bytes_); }

namespace {

std::shared_ptr<TensorImpl> new_impl(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape)
    SCION_CHECK(d >= 0, "tensor shape ", shape_str(shape), " has a negative dimension");
  const int64_t bytes = checked_mul(shape_numel(shape), int64_t(dtype_size(dtype)), "the bytes of a tensor");
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(size_t(bytes), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return impl;
}

// A view sharing `src`'s storage.
Tensor make_view(const Tensor& src, Shape shape, Strides strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = src.impl().storage;
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = src.dtype();
  return Tensor(impl);
}

int64_t wrap_dim(int64_t d, const Tensor& t, const char* op) {
  const int64_t ndim = t.dim(), w = d < 0 ? d + ndim : d;
  SCION_CHECK(w >= 0 && w < ndim, op, ": dimension ", d, " is out of range for ", t.desc(), " (rank ", ndim, ")");
  return w;
}

// Copies a (possibly strided) tensor into a new contiguous one of dtype `dt` on the same device.
Tensor copy_contiguous(const Tensor& src, DType dt) {
  Tensor out(new_impl(src.shape(), dt, src.device()));
  // Any layout and dtype, through the device's table (cuda::strided_copy).
  ops::detail::backend_of("copy", src.device())
      .strided_copy(src.raw_data(), src.dtype(), src.shape().data(), src.strides().data(), int(src.dim()),
                    out.raw_data(), dt);
  return out;
}

// Writes src (any layout, any dtype, cpu) into dst (any layout) elementwise.
void strided_assign_cpu(const Tensor& dst, const Tensor& src) {
  Tensor s = src;
  if (s.dtype() != dst.dtype() || !s.is_contiguous()) s = copy_contiguous(src, dst.dtype());
  if (dst.is_contiguous()) {
    std::memcpy(dst.raw_data(), s.raw_data(), dst.nbytes());
    return;
  }
  const size_t es = dtype_size(dst.dtype());
  const int64_t nd = dst.dim();
  const int64_t n = dst.numel();
  const char* sp = static_cast<const char*>(s.raw_data());
  char* dp = static_cast<char*>(dst.raw_data());
  std::vector<int64_t> idx(size_t(nd), 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t off = 0;
    for (int64_t d = 0; d < nd; ++d) off += idx[size_t(d)] * dst.strides()[size_t(d)];
    std::memcpy(dp + off * int64_t(es), sp + i * int64_t(es), es);
    for (int64_t d = nd - 1; d >= 0; --d) {
      if (++idx[size_t(d)] < dst.shape()[size_t(d)]) break;
      idx[size_t(d)] = 0;
    }
  }
}

}  // namespace

// ---- factories ------------------------------------------------------------------------------
Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  return Tensor(new_impl(shape, dtype, device));
}
Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  return full(shape, 0.0, dtype, device);
}
Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) {
  return full(shape, 1.0, dtype, device);
}
Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  ops::detail::backend_of("full", device).fill(t.raw_data(), dtype, t.numel(), value);
  return t;
}
Tensor Tensor::from_vector(const std::vector<float>& values, const Shape& shape, Device device) {
  SCION_CHECK(int64_t(values.size()) == shape_numel(shape), "from_vector: ", values.size(),
              " values do not fill shape ", shape_str(shape));
  Tensor t = empty(shape, DType::f32);
  std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(float));
  return device.is_cpu() ? t : t.to(device);
}
Tensor Tensor::from_vector_i64(const std::vector<int64_t>& values, const Shape& shape, Device device) {
  SCION_CHECK(int64_t(values.size()) == shape_numel(shape), "from_vector_i64: ", values.size(),
              " values do not fill shape ", shape_str(shape));
  Tensor t = empty(shape, DType::i64);
  std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(int64_t));
  return device.is_cpu() ? t : t.to(device);
}
Tensor Tensor::from_vector_i32(const std::vector<int32_t>& values, const Shape& shape, Device device) {
  SCION_CHECK(int64_t(values.size()) == shape_numel(shape), "from_vector_i32: ", values.size(),
              " values do not fill shape ", shape_str(shape));
  Tensor t = empty(shape, DType::i32);
  std::memcpy(t.raw_data(), values.data(), values.size() * sizeof(int32_t));
  return device.is_cpu() ? t : t.to(device);
}
Tensor Tensor::scalar(float v, Device device) { return from_vector({v}, {}, device); }
Tensor Tensor::arange(int64_t n, DType dtype, Device device) {
  Tensor t = empty({n}, DType::i64);
  auto* p = t.data<int64_t>();
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  if (dtype != DType::i64) t = t.to(dtype);
  return device.is_cpu() ? t : t.to(device);
}
Tensor Tensor::randn(const Shape& shape, uint64_t seed, float mean, float std, Device device) {
  Tensor t = empty(shape, DType::f32);
  ops::detail::backend_cpu().fill_normal(t.data<float>(), t.numel(), seed, mean, std);
  return device.is_cpu() ? t : t.to(device);
}
Tensor Tensor::rand(const Shape& shape, uint64_t seed, float lo, float hi, Device device) {
  Tensor t = empty(shape, DType::f32);
  ops::detail::backend_cpu().fill_uniform(t.data<float>(), t.numel(), seed, lo, hi);
  return device.is_cpu() ? t : t.to(device);
}
Tensor Tensor::randint(const Shape& shape, uint64_t seed, int64_t lo, int64_t hi, DType dtype,
                       Device device) {
  SCION_CHECK(hi > lo, "randint: empty range [", lo, ", ", hi, ")");
  Tensor t = empty(shape, DType::i64);
  ops::detail::backend_cpu().fill_randint(t.data<int64_t>(), t.numel(), seed, lo, hi);
  if (dtype != DType::i64) t = t.to(dtype);
  return device.is_cpu() ? t : t.to(device);
}

// ---- metadata ---------------------------------------------------------------------------------
int64_t Tensor::size(int64_t d) const { return shape()[size_t(wrap_dim(d, *this, "size"))]; }

bool Tensor::is_contiguous() const {
  int64_t expect = 1;
  for (size_t i = shape().size(); i-- > 0;) {
    if (shape()[i] != 1 && strides()[i] != expect) return false;
    expect *= shape()[i];
  }
  return true;
}

std::string Tensor::desc() const {
  if (!defined()) return "undefined";
  return std::string(dtype_name(dtype())) + shape_str(shape()) + " " + device().str();
}

void* Tensor::raw_data() const {
  return static_cast<char*>(impl().storage->data()) + impl().offset * int64_t(dtype_size(dtype()));
}

float Tensor::item() const {
  SCION_CHECK(numel() == 1, "item(): expected a tensor with one element, got ", desc());
  return to_vector()[0];
}

std::vector<float> Tensor::to_vector() const {
  Tensor host = device().is_cpu() ? *this : to(Device::cpu());
  std::vector<float> out(size_t(host.numel()));
  ops::detail::backend_cpu().strided_copy(host.raw_data(), host.dtype(), host.shape().data(),
                                          host.strides().data(), int(host.dim()), out.data(), DType::f32);
  return out;
}

std::vector<int64_t> Tensor::to_vector_i64() const {
  Tensor host = device().is_cpu() ? *this : to(Device::cpu());
  std::vector<int64_t> out(size_t(host.numel()));
  ops::detail::backend_cpu().strided_copy(host.raw_data(), host.dtype(), host.shape().data(),
                                          host.strides().data(), int(host.dim()), out.data(), DType::i64);
  return out;
}

// ---- views ---------------------------------------------------------------------------------------
Tensor Tensor::view(const Shape& requested) const {
  Shape shape = requested;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      SCION_CHECK(infer < 0, "view: more than one -1 in ", shape_str(requested));
      infer = int64_t(i);
    } else {
      known *= shape[i];
    }
  }
  if (infer >= 0) {
    SCION_CHECK(known > 0 && numel() % known == 0, "view: cannot view ", desc(), " as ",
                shape_str(requested));
    shape[size_t(infer)] = numel() / known;
  }
  SCION_CHECK(shape_numel(shape) == numel(), "view: cannot view ", desc(), " as ",
              shape_str(requested), " (element counts differ)");
  SCION_CHECK(is_contiguous(), "view: tensor ", desc(), " is not contiguous; use reshape()");
  Tensor out = make_view(*this, shape, contiguous_strides(shape), offset());
  if (autograd::needs_grad({this})) {
    Shape in_shape = this->shape();
    autograd::record("view", out, {*this}, [in_shape](const Tensor& g) {
      return std::vector<Tensor>{g.reshape(in_shape)};
    });
  }
  return out;
}

Tensor Tensor::reshape(const Shape& shape) const {
  return is_contiguous() ? view(shape) : contiguous().view(shape);
}

Tensor Tensor::permute(const std::vector<int64_t>& order) const {
  SCION_CHECK(int64_t(order.size()) == dim(), "permute: order of length ", order.size(),
              " for a tensor of rank ", dim(), " (", desc(), ")");
  Shape shape(order.size());
  Strides strides(order.size());
  std::vector<int64_t> inverse(order.size(), -1);
  for (size_t i = 0; i < order.size(); ++i) {
    const int64_t d = wrap_dim(order[i], *this, "permute");
    SCION_CHECK(inverse[size_t(d)] < 0, "permute: dimension ", d, " appears twice");
    inverse[size_t(d)] = int64_t(i);
    shape[i] = this->shape()[size_t(d)];
    strides[i] = this->strides()[size_t(d)];
  }
  Tensor out = make_view(*this, shape, strides, offset());
  if (autograd::needs_grad({this})) {
    autograd::record("permute", out, {*this}, [inverse](const Tensor& g) {
      return std::vector<Tensor>{g.permute(inverse)};
    });
  }
  return out;
}

Tensor Tensor::transpose(int64_t a, int64_t b) const {
  std::vector<int64_t> order(static_cast<size_t>(dim()));
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[size_t(wrap_dim(a, *this, "transpose"))], order[size_t(wrap_dim(b, *this, "transpose"))]);
  return permute(order);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, *this, "narrow");
  SCION_CHECK(start >= 0 && length >= 0 && start + length <= shape()[size_t(d)], "narrow: range [",
              start, ", ", start + length, ") is outside dimension ", d, " of ", desc());
  Shape shape = this->shape();
  shape[size_t(d)] = length;
  Tensor out = make_view(*this, shape, strides(), offset() + start * strides()[size_t(d)]);
  if (autograd::needs_grad({this})) {
    Shape in_shape = this->shape();
    DType dt = dtype();
    Device dev = device();
    autograd::record("narrow", out, {*this}, [=](const Tensor& g) {
      Tensor full = Tensor::zeros(in_shape, dt, dev);
      full.narrow(d, start, length).copy_(g);
      return std::vector<Tensor>{full};
    });
  }
  return out;
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = d < 0 ? d + dim() + 1 : d;
  SCION_CHECK(d >= 0 && d <= dim(), "unsqueeze: dimension out of range for ", desc());
  Shape s = shape();
  s.insert(s.begin() + d, 1);
  return reshape(s);
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, *this, "squeeze");
  SCION_CHECK(shape()[size_t(d)] == 1, "squeeze: dimension ", d, " of ", desc(), " is not 1");
  Shape s = shape();
  s.erase(s.begin() + d);
  return reshape(s);
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::clone() const {
  Tensor out = copy_contiguous(*this, dtype());
  if (autograd::needs_grad({this}))
    autograd::record("clone", out, {*this}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
  return out;
}

Tensor Tensor::to(DType dt) const {
  if (dt == dtype()) return *this;
  Tensor out = copy_contiguous(*this, dt);
  if (autograd::needs_grad({this}) && is_floating(dt)) {
    DType back = dtype();
    autograd::record("to_dtype", out, {*this}, [back](const Tensor& g) {
      return std::vector<Tensor>{g.to(back)};
    });
  }
  return out;
}

Tensor Tensor::to(Device dev) const {
  if (dev == device()) return *this;
#ifdef SCION_HAVE_CUDA
  if (dev.is_cuda())
    SCION_CHECK(dev.index < cuda_device_count(), "to(", dev.str(), "): tensor ", desc(), " cannot move: ", dev.str(),
                " is not available (", cuda_device_count(), " CUDA device(s) found)");
  // A strided view is made contiguous on its own device first (the table's strided copy).
  Tensor src;
  {
    NoGradGuard ng;
    src = contiguous().detach();
  }
  Tensor out(new_impl(shape(), dtype(), dev));
  if (device().is_cpu() && dev.is_cuda())
    cuda::copy_host_to_device(out.raw_data(), src.raw_data(), nbytes(), dev.index);
  else if (device().is_cuda() && dev.is_cpu())
    cuda::copy_device_to_host(out.raw_data(), src.raw_data(), nbytes(), device().index);
  else
    throw Error("to(): copies between two CUDA devices are not supported yet (" + desc() + " -> " +
                dev.str() + ")");
  if (autograd::needs_grad({this})) {
    Device back = device();
    autograd::record("to_device", out, {*this}, [back](const Tensor& g) {
      return std::vector<Tensor>{g.to(back)};
    });
  }
  return out;
#else
  throw Error("to(" + dev.str() + "): this build of Scion has no CUDA backend (tensor " + desc() + ")");
#endif
}

Tensor Tensor::detach() const {
  Tensor out = make_view(*this, shape(), strides(), offset());
  return out;
}

// ---- in-place ---------------------------------------------------------------------------------------
Tensor& Tensor::fill_(double value) {
  if (is_contiguous()) {
    ops::detail::backend_of("fill_", device()).fill(raw_data(), dtype(), numel(), value);
  } else {
    copy_(Tensor::full(shape(), value, dtype(), device()));
  }
  ++impl().version;
  return *this;
}

Tensor& Tensor::copy_(const Tensor& src) {
  SCION_CHECK(src.shape() == shape(), "copy_: source ", src.desc(), " does not match destination ",
              desc());
  if (src.same(*this)) return *this;
  if (device().is_cpu()) {
    Tensor s = src.device().is_cpu() ? src : src.to(Device::cpu());
    strided_assign_cpu(*this, s);
  } else {
#ifdef SCION_HAVE_CUDA
    // A contiguous source of the destination's dtype on the destination's device, then a copy
    // (contiguous destination) or the table's strided assignment (a strided view, e.g. narrow).
    Tensor s = src.detach();
    if (!s.is_contiguous() || s.dtype() != dtype()) s = copy_contiguous(s, dtype());  // on src's device
    if (!(s.device() == device())) s = s.to(device());                                // cpu <-> cuda
    const auto& be = ops::detail::backend_of("copy_", device());
    if (is_contiguous()) be.copy(raw_data(), s.raw_data(), nbytes());
    else be.strided_assign(raw_data(), strides().data(), s.raw_data(), shape().data(), int(dim()), dtype_size(dtype()));
#else
    throw Error("copy_: no backend for " + device().str());
#endif
  }
  ++impl().version;
  return *this;
}

// ---- autograd -----------------------------------------------------------------------------------------
Tensor& Tensor::set_requires_grad(bool r) {
  SCION_CHECK(!r || is_floating(dtype()), "set_requires_grad: only floating tensors can require grad, got ",
              desc());
  SCION_CHECK(is_leaf(), "set_requires_grad: only leaf tensors can change requires_grad (", desc(), ")");
  impl().requires_grad = r;
  return *this;
}

Tensor Tensor::grad() const { return Tensor(impl().grad); }
void Tensor::set_grad(const Tensor& g) {
  SCION_CHECK(!g.defined() || g.shape() == shape(), "set_grad: gradient ", g.desc(),
              " does not match tensor ", desc());
  impl().grad = g.impl_ptr();
}
void Tensor::zero_grad() { impl().grad.reset(); }

void Tensor::backward(const Tensor& seed, bool retain_graph) const {
  autograd::run_backward(*this, seed, retain_graph);
}

// ---- printing ------------------------------------------------------------------------------------------
std::string Tensor::to_string(int64_t max_per_dim) const {
  if (!defined()) return "Tensor(undefined)";
  std::ostringstream os;
  os << "Tensor(" << desc() << (requires_grad() ? ", requires_grad" : "") << ")\n";
  const std::vector<float> v = to_vector();
  const Shape& s = shape();
  if (s.empty()) {
    os << v[0];
    return os.str();
  }
  const Strides st = contiguous_strides(s);
  // Recursive print with "..." when a dimension is longer than max_per_dim.
  std::function<void(size_t, int64_t)> rec = [&](size_t d, int64_t base) {
    os << "[";
    const int64_t n = s[d];
    for (int64_t i = 0; i < n; ++i) {
      if (n > max_per_dim && i == max_per_dim / 2) {
        os << "...";
        i = n - max_per_dim / 2 - 1;
        if (d + 1 < s.size()) os << ",\n" << std::string(d + 1, ' ');
        else os << ", ";
        continue;
      }
      if (d + 1 == s.size()) os << v[size_t(base + i * st[d])];
      else rec(d + 1, base + i * st[d]);
      if (i + 1 < n) os << (d + 1 == s.size() ? ", " : ",\n" + std::string(d + 1, ' '));
    }
    os << "]";
  };
  rec(0, 0);
  return os.str();
}

std::ostream& operator<<(std::ostream& os, const Tensor& t) { return os << t.to_string(); }

}  // namespace scion
