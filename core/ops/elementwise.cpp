// Broadcasting binary ops, scalar ops and unary activations.
#include "ops/common.h"

namespace scion::ops {
using namespace detail;

namespace {

Tensor binary(const char* name, BinaryOp op, const Tensor& a, const Tensor& b) {
  const Backend& be = backend_for(name, {&a, &b});
  check_float(name, a, "left operand");
  check_float(name, b, "right operand");
  const Shape out_shape = broadcast_shapes(name, a.shape(), b.shape());
  Tensor out = Tensor::empty(out_shape, DType::f32, a.device());
  const auto as = broadcast_strides(a, out_shape), bs = broadcast_strides(b, out_shape);
  be.binary(op, fptr(a), as.data(), fptr(b), bs.data(), fptr(out), out_shape.data(), int(out_shape.size()));
  return out;
}

Tensor unary(const char* name, UnaryOp op, const Tensor& a, float p0 = 0.f, float p1 = 0.f) {
  const Backend& be = backend_for(name, {&a});
  check_float(name, a, "input");
  Tensor x = dense(a);
  Tensor out = Tensor::empty(a.shape(), DType::f32, a.device());
  be.unary(op, fptr(x), fptr(out), a.numel(), p0, p1);
  if (autograd::needs_grad({&a})) {
    // Keep what the derivative needs: x for most ops, y for exp/tanh/sqrt/rsqrt.
    const bool uses_y = op == UnaryOp::exp || op == UnaryOp::tanh || op == UnaryOp::sqrt || op == UnaryOp::rsqrt;
    Tensor saved = uses_y ? out.detach() : x;
    autograd::record(name, out, {a}, [name, op, saved, uses_y, p0, p1](const Tensor& g) {
      const Backend& bb = backend_for(name, {&saved, &g});
      Tensor gd = dense(g);
      Tensor gx = Tensor::empty(gd.shape(), DType::f32, gd.device());
      bb.unary_backward(op, uses_y ? nullptr : fptr(saved), uses_y ? fptr(saved) : nullptr, fptr(gd), fptr(gx),
                        gd.numel(), p0, p1);
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary("add", BinaryOp::add, a, b);
  if (autograd::needs_grad({&a, &b})) {
    Shape sa = a.shape(), sb = b.shape();
    autograd::record("add", out, {a, b}, [sa, sb](const Tensor& g) {
      return std::vector<Tensor>{sum_to(g, sa), sum_to(g, sb)};
    });
  }
  return out;
}

void add_inplace(Tensor& acc, const Tensor& b) {
  const char* name = "add_inplace";
  const Backend& be = backend_for(name, {&acc, &b});
  check_float(name, acc, "accumulator");
  check_float(name, b, "addend");
  if (!acc.is_contiguous()) fail(name, "the accumulator must be contiguous, got " + acc.desc());
  if (b.shape() != acc.shape()) fail(name, "shapes differ: accumulator " + acc.desc() + ", addend " + b.desc());
  const auto as = broadcast_strides(acc, acc.shape()), bs = broadcast_strides(b, acc.shape());
  // Elementwise, each output read once before it is written: safe in place.
  be.binary(BinaryOp::add, fptr(acc), as.data(), fptr(b), bs.data(), fptr(acc), acc.shape().data(),
            int(acc.dim()));
  ++acc.impl().version;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary("sub", BinaryOp::sub, a, b);
  if (autograd::needs_grad({&a, &b})) {
    Shape sa = a.shape(), sb = b.shape();
    autograd::record("sub", out, {a, b}, [sa, sb](const Tensor& g) {
      return std::vector<Tensor>{sum_to(g, sa), neg(sum_to(g, sb))};
    });
  }
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary("mul", BinaryOp::mul, a, b);
  if (autograd::needs_grad({&a, &b})) {
    Tensor ad = a.detach(), bd = b.detach();
    bool ga = a.requires_grad(), gb = b.requires_grad();
    autograd::record("mul", out, {a, b}, [ad, bd, ga, gb](const Tensor& g) {
      return std::vector<Tensor>{ga ? sum_to(mul(g, bd), ad.shape()) : Tensor(),
                                 gb ? sum_to(mul(g, ad), bd.shape()) : Tensor()};
    });
  }
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary("div", BinaryOp::div, a, b);
  if (autograd::needs_grad({&a, &b})) {
    Tensor ad = a.detach(), bd = b.detach();
    bool ga = a.requires_grad(), gb = b.requires_grad();
    autograd::record("div", out, {a, b}, [ad, bd, ga, gb](const Tensor& g) {
      Tensor gA, gB;
      if (ga) gA = sum_to(div(g, bd), ad.shape());
      if (gb) gB = sum_to(neg(div(mul(g, ad), mul(bd, bd))), bd.shape());
      return std::vector<Tensor>{gA, gB};
    });
  }
  return out;
}

Tensor add_scalar(const Tensor& a, float s) { return unary("add_scalar", UnaryOp::add_scalar, a, s); }
Tensor mul_scalar(const Tensor& a, float s) { return unary("mul_scalar", UnaryOp::mul_scalar, a, s); }
Tensor pow_scalar(const Tensor& a, float p) { return unary("pow_scalar", UnaryOp::pow, a, p); }
Tensor neg(const Tensor& a) { return unary("neg", UnaryOp::neg, a); }
Tensor exp(const Tensor& a) { return unary("exp", UnaryOp::exp, a); }
Tensor log(const Tensor& a) { return unary("log", UnaryOp::log, a); }
Tensor tanh(const Tensor& a) { return unary("tanh", UnaryOp::tanh, a); }
Tensor sqrt(const Tensor& a) { return unary("sqrt", UnaryOp::sqrt, a); }
Tensor rsqrt(const Tensor& a) { return unary("rsqrt", UnaryOp::rsqrt, a); }
Tensor relu(const Tensor& a) { return unary("relu", UnaryOp::relu, a); }
Tensor gelu(const Tensor& a) { return unary("gelu", UnaryOp::gelu, a); }
Tensor silu(const Tensor& a) { return unary("silu", UnaryOp::silu, a); }
// Composed from silu and mul (both on the table): the tape keeps gate, silu(gate) and up.
Tensor swiglu(const Tensor& gate, const Tensor& up) { return mul(silu(gate), up); }
Tensor clamp(const Tensor& a, float lo, float hi) {
  if (!(lo <= hi)) fail("clamp", "lower bound " + std::to_string(lo) + " exceeds upper bound " + std::to_string(hi));
  return unary("clamp", UnaryOp::clamp, a, lo, hi);
}

Tensor dropout(const Tensor& a, float p, uint64_t seed) {
  if (!(p >= 0.f && p < 1.f)) fail("dropout", "probability must be in [0, 1), got " + std::to_string(p));
  if (p == 0.f) return a;
  const Backend& be = backend_for("dropout", {&a});
  check_float("dropout", a, "input");
  Tensor x = dense(a);
  Tensor out = Tensor::empty(a.shape(), DType::f32, a.device());
  Tensor mask = Tensor::empty(a.shape(), DType::u8, a.device());
  be.dropout(fptr(x), fptr(out), ptr<uint8_t>(mask), a.numel(), p, seed);
  if (autograd::needs_grad({&a})) {
    const float scale = 1.f / (1.f - p);
    autograd::record("dropout", out, {a}, [mask, scale](const Tensor& g) {
      const Backend& bb = backend_for("dropout", {&mask, &g});
      Tensor gd = dense(g);
      Tensor gx = Tensor::empty(gd.shape(), DType::f32, gd.device());
      bb.masked_scale(fptr(gd), ptr<uint8_t>(mask), fptr(gx), gd.numel(), scale);
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

}  // namespace scion::ops
