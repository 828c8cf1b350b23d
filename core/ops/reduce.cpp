// Sums, means and maxima over axes.
#include <algorithm>
#include <set>

#include "ops/common.h"

namespace scion::ops {
using namespace detail;

namespace {

// Reduces one axis of a contiguous tensor, keeping it as size 1.
Tensor sum_axis_keep(const Tensor& x, int64_t axis) {
  const Shape& s = x.shape();
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= s[size_t(d)];
  for (size_t d = size_t(axis) + 1; d < s.size(); ++d) inner *= s[d];
  Shape os = s;
  os[size_t(axis)] = 1;
  Tensor y = Tensor::empty(os, DType::f32, x.device());
  backend_of("sum", x.device()).reduce_sum(fptr(x), fptr(y), outer, s[size_t(axis)], inner);
  return y;
}

std::vector<int64_t> normalise_axes(const char* op, const std::vector<int64_t>& axes, const Tensor& t) {
  std::set<int64_t> uniq;
  for (int64_t a : axes)
    if (!uniq.insert(wrap_axis(op, a, t)).second)
      fail(op, "axis " + std::to_string(a) + " given twice for " + t.desc());
  return {uniq.begin(), uniq.end()};
}

Shape reduced_shape(const Shape& s, const std::vector<int64_t>& axes, bool keepdim) {
  Shape out;
  for (size_t d = 0; d < s.size(); ++d) {
    const bool r = std::find(axes.begin(), axes.end(), int64_t(d)) != axes.end();
    if (!r) out.push_back(s[d]);
    else if (keepdim) out.push_back(1);
  }
  return out;
}

}  // namespace

Tensor sum(const Tensor& a, const std::vector<int64_t>& axes_in, bool keepdim) {
  backend_for("sum", {&a});
  check_float("sum", a, "input");
  const auto axes = normalise_axes("sum", axes_in, a);
  Tensor y = dense(a);
  for (auto it = axes.rbegin(); it != axes.rend(); ++it) y = sum_axis_keep(y, *it);
  if (axes.empty()) y = y.clone();  // no axes: still a fresh tensor, never an alias of a
  Shape keep_shape = reduced_shape(a.shape(), axes, true);
  Tensor out = keepdim ? y : y.view(reduced_shape(a.shape(), axes, false));
  if (autograd::needs_grad({&a})) {
    Shape in_shape = a.shape();
    autograd::record("sum", out, {a}, [in_shape, keep_shape](const Tensor& g) {
      return std::vector<Tensor>{broadcast_to(dense(g).view(keep_shape), in_shape)};
    });
  }
  return out;
}

Tensor mean(const Tensor& a, const std::vector<int64_t>& axes, bool keepdim) {
  int64_t count = 1;
  for (int64_t ax : normalise_axes("mean", axes, a)) count *= a.shape()[size_t(ax)];
  return mul_scalar(sum(a, axes, keepdim), count > 0 ? 1.f / float(count) : 0.f);
}

Tensor sum_all(const Tensor& a) {
  const Backend& be = backend_for("sum_all", {&a});
  check_float("sum_all", a, "input");
  Tensor x = dense(a);
  Tensor out = Tensor::empty({}, DType::f32, a.device());
  be.sum_all(fptr(x), x.numel(), fptr(out));
  if (autograd::needs_grad({&a})) {
    Shape in_shape = a.shape();
    autograd::record("sum_all", out, {a}, [in_shape](const Tensor& g) {
      // The upstream scalar broadcast on its own device (no host read).
      return std::vector<Tensor>{broadcast_to(dense(g).view(Shape(in_shape.size(), 1)), in_shape)};
    });
  }
  return out;
}

Tensor mean_all(const Tensor& a) {
  return mul_scalar(sum_all(a), a.numel() > 0 ? 1.f / float(a.numel()) : 0.f);
}

Tensor max(const Tensor& a, int64_t axis_in, bool keepdim) {
  const Backend& be = backend_for("max", {&a});
  check_float("max", a, "input");
  const int64_t axis = wrap_axis("max", axis_in, a);
  if (a.shape()[size_t(axis)] == 0) fail("max", "cannot reduce an empty axis of " + a.desc());
  Tensor x = dense(a);
  const Shape& s = a.shape();
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= s[size_t(d)];
  for (size_t d = size_t(axis) + 1; d < s.size(); ++d) inner *= s[d];
  const int64_t n = s[size_t(axis)];
  Shape keep = s;
  keep[size_t(axis)] = 1;
  Tensor vals = Tensor::empty(keep, DType::f32, a.device());
  Tensor idx = Tensor::empty(keep, DType::i64, a.device());
  be.reduce_max(fptr(x), fptr(vals), ptr<int64_t>(idx), outer, n, inner);
  Tensor out = keepdim ? vals : vals.view(reduced_shape(s, {axis}, false));
  if (autograd::needs_grad({&a})) {
    autograd::record("max", out, {a}, [idx, s, outer, n, inner](const Tensor& g) {
      const Backend& bb = backend_for("max", {&idx, &g});
      Tensor gd = dense(g);
      Tensor gx = Tensor::zeros(s, DType::f32, gd.device());
      bb.max_backward(fptr(gd), ptr<int64_t>(idx), fptr(gx), outer, n, inner);
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

Tensor sum_to(const Tensor& a, const Shape& shape) {
  if (a.shape() == shape) return a;
  const size_t lead = a.shape().size() - shape.size();
  if (a.shape().size() < shape.size()) fail("sum_to", "cannot reduce " + a.desc() + " to " + shape_str(shape));
  std::vector<int64_t> axes;
  for (size_t d = 0; d < a.shape().size(); ++d) {
    if (d < lead) axes.push_back(int64_t(d));
    else if (shape[d - lead] == 1 && a.shape()[d] != 1) axes.push_back(int64_t(d));
    else if (shape[d - lead] != a.shape()[d])
      fail("sum_to", "cannot reduce " + a.desc() + " to " + shape_str(shape));
  }
  return sum(a, axes, true).reshape(shape);
}

}  // namespace scion::ops
