// Embedding lookup, index_select, gather, concat/split, masked_fill and where.
#include <cstring>

#include "autograd/accumulate.h"
#include "ops/common.h"

namespace scion::ops {
using namespace detail;

Tensor embedding(const Tensor& weight, const Tensor& ids) {
  const char* op = "embedding";
  const Backend& be = backend_for(op, {&weight, &ids});
  check_float(op, weight, "weight");
  if (weight.dim() != 2) fail(op, "weight must be [vocab, dim], got " + weight.desc());
  Tensor I = dense_index(op, ids, "ids");
  const int64_t V = weight.size(0), D = weight.size(1), n = I.numel();
  Tensor W = dense(weight);
  Shape out_shape = ids.shape();
  out_shape.push_back(D);
  const Device dev = weight.device();
  Tensor y = Tensor::empty(out_shape, DType::f32, dev);
  Tensor bad_t = Tensor::empty({1}, DType::i64, dev);
  be.embedding_forward(fptr(W), V, D, ptr<int64_t>(I), n, fptr(y), ptr<int64_t>(bad_t));
  const int64_t bad = read_i64(bad_t);  // a host read (synchronises on cuda)
  if (bad >= 0)
    fail(op, "id " + std::to_string(read_i64(I.view({-1}), bad)) + " at position " + std::to_string(bad) +
                 " is outside the table of " + std::to_string(V) + " rows (" + weight.desc() + ")");
  if (autograd::needs_grad({&weight})) {
    // The table's gradient is zero but for the looked-up rows: when the table is a leaf that
    // already holds a gradient of its own (a tied LM head's, computed earlier in backward),
    // the rows are added into it in place (autograd/accumulate.h) instead of into a fresh
    // zero-filled [V, D] table that autograd would then add (3 more passes over V x D).
    // Same sum either way, but for its order: head + (0 + rows) becomes (head + row) + row.
    const Tensor table = weight;
    autograd::record(op, y, {weight, ids}, [I, V, D, n, table](const Tensor& g) {
      const Backend& bb = backend_for("embedding", {&I, &g});
      Tensor G = dense(g);
      Tensor into = autograd::detail::accumulation_target(table);
      if (into.defined()) {
        bb.embedding_backward(fptr(G), ptr<int64_t>(I), n, D, fptr(into), V);
        ++into.impl().version;
        return std::vector<Tensor>{Tensor(), Tensor()};
      }
      Tensor gw = Tensor::zeros({V, D}, DType::f32, G.device());
      bb.embedding_backward(fptr(G), ptr<int64_t>(I), n, D, fptr(gw), V);
      return std::vector<Tensor>{gw, Tensor()};
    });
  }
  return y;
}

Tensor index_select(const Tensor& a, int64_t axis_in, const Tensor& index) {
  const char* op = "index_select";
  const Backend& be = backend_for(op, {&a, &index});
  check_float(op, a, "input");
  if (index.dim() != 1) fail(op, "index must be 1-D, got " + index.desc());
  const int64_t axis = wrap_axis(op, axis_in, a);
  Tensor A = dense(a), I = dense_index(op, index, "index");
  const Shape& s = a.shape();
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= s[size_t(d)];
  for (size_t d = size_t(axis) + 1; d < s.size(); ++d) inner *= s[d];
  const int64_t n = s[size_t(axis)], k = I.numel();
  // The range check reads the indices on the host (a copy from the device on cuda).
  for (int64_t t : I.device().is_cpu() ? std::vector<int64_t>(I.data<int64_t>(), I.data<int64_t>() + k)
                                       : I.to_vector_i64())
    if (t < 0 || t >= n)
      fail(op, "index " + std::to_string(t) + " is out of range for axis " + std::to_string(axis) + " of " +
                   a.desc());
  Shape os = s;
  os[size_t(axis)] = k;
  Tensor y = Tensor::empty(os, DType::f32, a.device());
  be.index_select(fptr(A), ptr<int64_t>(I), fptr(y), outer, n, k, inner);
  if (autograd::needs_grad({&a})) {
    autograd::record(op, y, {a, index}, [I, s, outer, inner, n, k](const Tensor& g) {
      const Backend& bb = backend_for("index_select", {&I, &g});
      Tensor G = dense(g);
      Tensor ga = Tensor::zeros(s, DType::f32, G.device());
      bb.index_add(fptr(G), ptr<int64_t>(I), fptr(ga), outer, n, k, inner);
      return std::vector<Tensor>{ga, Tensor()};
    });
  }
  return y;
}

Tensor gather(const Tensor& a, int64_t axis_in, const Tensor& index) {
  const char* op = "gather";
  const Backend& be = backend_for(op, {&a, &index});
  check_float(op, a, "input");
  const int64_t axis = wrap_axis(op, axis_in, a);
  if (index.dim() != a.dim()) fail(op, "index " + index.desc() + " must have the rank of input " + a.desc());
  for (int64_t d = 0; d < a.dim(); ++d)
    if (d != axis && index.size(d) > a.size(d))
      fail(op, "index " + index.desc() + " is larger than input " + a.desc() + " in dimension " + std::to_string(d));
  Tensor A = dense(a), I = dense_index(op, index, "index");
  const Shape& is = I.shape();
  const Strides as = A.strides();
  const int64_t nd = a.dim(), total = I.numel(), n = a.size(axis);
  Tensor y = Tensor::empty(is, DType::f32, a.device());
  // offsets[i] = position in A that output element i reads, computed and checked on the host
  // once (from a host copy of the indices on cuda), then used by both passes on the device.
  Tensor offsets = Tensor::empty(is, DType::i64);
  int64_t* off = offsets.data<int64_t>();
  const Tensor I_host = I.device().is_cpu() ? I : I.to(Device::cpu());
  const int64_t* ip = I_host.data<int64_t>();
  std::vector<int64_t> idx(size_t(nd), 0);
  for (int64_t e = 0; e < total; ++e) {
    const int64_t t = ip[e];
    if (t < 0 || t >= n)
      fail(op, "index " + std::to_string(t) + " is out of range for axis " + std::to_string(axis) + " of " + a.desc());
    int64_t o = 0;
    for (int64_t d = 0; d < nd; ++d) o += (d == axis ? t : idx[size_t(d)]) * as[size_t(d)];
    off[e] = o;
    for (int64_t d = nd - 1; d >= 0; --d) {
      if (++idx[size_t(d)] < is[size_t(d)]) break;
      idx[size_t(d)] = 0;
    }
  }
  if (!a.device().is_cpu()) offsets = offsets.to(a.device());
  be.take(fptr(A), ptr<int64_t>(offsets), fptr(y), total);
  if (autograd::needs_grad({&a})) {
    Shape s = a.shape();
    int64_t lead = 1, trail = 1;
    for (int64_t d = 0; d < axis; ++d) lead *= is[size_t(d)];
    for (int64_t d = axis + 1; d < nd; ++d) trail *= is[size_t(d)];
    const int64_t len = is[size_t(axis)];
    autograd::record(op, y, {a, index}, [offsets, s, lead, len, trail](const Tensor& g) {
      const Backend& bb = backend_for("gather", {&offsets, &g});
      Tensor G = dense(g);
      Tensor ga = Tensor::zeros(s, DType::f32, G.device());
      bb.take_backward(fptr(G), ptr<int64_t>(offsets), fptr(ga), lead, len, trail);
      return std::vector<Tensor>{ga, Tensor()};
    });
  }
  return y;
}

Tensor concat(const std::vector<Tensor>& parts, int64_t axis_in) {
  const char* op = "concat";
  if (parts.empty()) fail(op, "needs at least one tensor");
  const Tensor& first = parts[0];
  const int64_t axis = wrap_axis(op, axis_in, first);
  Shape os = first.shape();
  os[size_t(axis)] = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const Tensor& p = parts[i];
    backend_for(op, {&first, &p});
    check_float(op, p, "part");
    bool ok = p.dim() == first.dim();
    for (int64_t d = 0; ok && d < p.dim(); ++d) ok = d == axis || p.size(d) == first.size(d);
    if (!ok)
      fail(op, "part " + std::to_string(i) + " " + p.desc() + " does not match part 0 " + first.desc() +
                   " outside axis " + std::to_string(axis));
    os[size_t(axis)] += p.size(axis);
  }
  Tensor y = Tensor::empty(os, DType::f32, first.device());
  int64_t at = 0;
  for (const Tensor& p : parts) {
    y.narrow(axis, at, p.size(axis)).copy_(p.detach());
    at += p.size(axis);
  }
  if (autograd::needs_grad(parts)) {
    std::vector<int64_t> sizes;
    for (const Tensor& p : parts) sizes.push_back(p.size(axis));
    autograd::record(op, y, parts, [sizes, axis](const Tensor& g) {
      std::vector<Tensor> gs;
      int64_t start = 0;
      for (int64_t s : sizes) {
        gs.push_back(g.narrow(axis, start, s));
        start += s;
      }
      return gs;
    });
  }
  return y;
}

std::vector<Tensor> split(const Tensor& a, const std::vector<int64_t>& sizes, int64_t axis_in) {
  const int64_t axis = wrap_axis("split", axis_in, a);
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0) fail("split", "size " + std::to_string(s) + " is negative (splitting " + a.desc() + ")");
    total += s;
  }
  if (total != a.size(axis))
    fail("split", "sizes add up to " + std::to_string(total) + " but axis " + std::to_string(axis) + " of " +
                      a.desc() + " has " + std::to_string(a.size(axis)));
  std::vector<Tensor> out;
  int64_t start = 0;
  for (int64_t s : sizes) {
    out.push_back(a.narrow(axis, start, s));
    start += s;
  }
  return out;
}

namespace {
// out = cond ? x : y over broadcast shapes (x or y may be a scalar fill when null).
Tensor select3(const char* op, const Tensor& cond, const Tensor* x, float xv, const Tensor* y, float yv,
               const Shape& out_shape) {
  const Backend& be = backend_for(op, {&cond, x, y});
  Tensor out = Tensor::empty(out_shape, DType::f32, cond.device());
  const auto cs = broadcast_strides(cond, out_shape);
  const auto xs = x ? broadcast_strides(*x, out_shape) : std::vector<int64_t>(out_shape.size(), 0);
  const auto ys = y ? broadcast_strides(*y, out_shape) : std::vector<int64_t>(out_shape.size(), 0);
  be.where(ptr<uint8_t>(cond), cs.data(), x ? fptr(*x) : nullptr, xs.data(), xv, y ? fptr(*y) : nullptr, ys.data(),
           yv, fptr(out), out_shape.data(), int(out_shape.size()));
  return out;
}
}  // namespace

Tensor masked_fill(const Tensor& a, const Tensor& mask, float value) {
  const char* op = "masked_fill";
  backend_for(op, {&a, &mask});
  check_float(op, a, "input");
  check_dtype(op, mask, DType::u8, "mask");
  const Shape os = broadcast_shapes(op, a.shape(), mask.shape());
  if (os != a.shape()) fail(op, "mask " + mask.desc() + " must broadcast to input " + a.desc());
  Tensor out = select3(op, mask, nullptr, value, &a, 0.f, os);
  if (autograd::needs_grad({&a})) {
    Tensor m = mask.detach();
    autograd::record(op, out, {a, mask}, [m, os](const Tensor& g) {
      Tensor G = dense(g);
      return std::vector<Tensor>{select3("masked_fill", m, nullptr, 0.f, &G, 0.f, os), Tensor()};
    });
  }
  return out;
}

Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  const char* op = "where";
  backend_for(op, {&cond, &a, &b});
  check_dtype(op, cond, DType::u8, "condition");
  check_float(op, a, "first value");
  check_float(op, b, "second value");
  const Shape os = broadcast_shapes(op, broadcast_shapes(op, cond.shape(), a.shape()), b.shape());
  Tensor out = select3(op, cond, &a, 0.f, &b, 0.f, os);
  if (autograd::needs_grad({&a, &b})) {
    Tensor c = cond.detach();
    Shape sa = a.shape(), sb = b.shape();
    autograd::record(op, out, {cond, a, b}, [c, os, sa, sb](const Tensor& g) {
      Tensor G = dense(g);
      Tensor ga = sum_to(select3("where", c, &G, 0.f, nullptr, 0.f, os), sa);
      Tensor gb = sum_to(select3("where", c, nullptr, 0.f, &G, 0.f, os), sb);
      return std::vector<Tensor>{Tensor(), ga, gb};
    });
  }
  return out;
}

}  // namespace scion::ops
