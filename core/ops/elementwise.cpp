// Broadcasting binary ops, scalar ops and unary activations.
#include "ops/common.h"

namespace scion::ops {
using namespace detail;

namespace {

Tensor binary(const char* name, cpu::BinaryOp op, const Tensor& a, const Tensor& b) {
  check_cpu(name, {&a, &b});
  check_float(name, a, "left operand");
  check_float(name, b, "right operand");
  const Shape out_shape = broadcast_shapes(name, a.shape(), b.shape());
  Tensor out = Tensor::empty(out_shape, DType::f32);
  const auto as = broadcast_strides(a, out_shape), bs = broadcast_strides(b, out_shape);
  cpu::binary(op, a.data<float>(), as.data(), b.data<float>(), bs.data(), out.data<float>(),
              out_shape.data(), int(out_shape.size()));
  return out;
}

Tensor unary(const char* name, cpu::UnaryOp op, const Tensor& a, float p0 = 0.f, float p1 = 0.f) {
  check_cpu(name, {&a});
  check_float(name, a, "input");
  Tensor x = dense(a);
  Tensor out = Tensor::empty(a.shape(), DType::f32);
  cpu::unary(op, x.data<float>(), out.data<float>(), a.numel(), p0, p1);
  if (autograd::needs_grad({&a})) {
    // Keep what the derivative needs: x for most ops, y for exp/tanh/sqrt/rsqrt.
    const bool uses_y = op == cpu::UnaryOp::exp || op == cpu::UnaryOp::tanh ||
                        op == cpu::UnaryOp::sqrt || op == cpu::UnaryOp::rsqrt;
    Tensor saved = uses_y ? out.detach() : x;
    autograd::record(name, out, {a}, [op, saved, uses_y, p0, p1](const Tensor& g) {
      Tensor gd = dense(g);
      Tensor gx = Tensor::empty(gd.shape(), DType::f32);
      cpu::unary_backward(op, uses_y ? nullptr : saved.data<float>(), uses_y ? saved.data<float>() : nullptr,
                          gd.data<float>(), gx.data<float>(), gd.numel(), p0, p1);
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary("add", cpu::BinaryOp::add, a, b);
  if (autograd::needs_grad({&a, &b})) {
    Shape sa = a.shape(), sb = b.shape();
    autograd::record("add", out, {a, b}, [sa, sb](const Tensor& g) {
      return std::vector<Tensor>{sum_to(g, sa), sum_to(g, sb)};
    });
  }
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary("sub", cpu::BinaryOp::sub, a, b);
  if (autograd::needs_grad({&a, &b})) {
    Shape sa = a.shape(), sb = b.shape();
    autograd::record("sub", out, {a, b}, [sa, sb](const Tensor& g) {
      return std::vector<Tensor>{sum_to(g, sa), neg(sum_to(g, sb))};
    });
  }
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary("mul", cpu::BinaryOp::mul, a, b);
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
  Tensor out = binary("div", cpu::BinaryOp::div, a, b);
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

Tensor add_scalar(const Tensor& a, float s) { return unary("add_scalar", cpu::UnaryOp::add_scalar, a, s); }
Tensor mul_scalar(const Tensor& a, float s) { return unary("mul_scalar", cpu::UnaryOp::mul_scalar, a, s); }
Tensor pow_scalar(const Tensor& a, float p) { return unary("pow_scalar", cpu::UnaryOp::pow, a, p); }
Tensor neg(const Tensor& a) { return unary("neg", cpu::UnaryOp::neg, a); }
Tensor exp(const Tensor& a) { return unary("exp", cpu::UnaryOp::exp, a); }
Tensor log(const Tensor& a) { return unary("log", cpu::UnaryOp::log, a); }
Tensor tanh(const Tensor& a) { return unary("tanh", cpu::UnaryOp::tanh, a); }
Tensor sqrt(const Tensor& a) { return unary("sqrt", cpu::UnaryOp::sqrt, a); }
Tensor rsqrt(const Tensor& a) { return unary("rsqrt", cpu::UnaryOp::rsqrt, a); }
Tensor relu(const Tensor& a) { return unary("relu", cpu::UnaryOp::relu, a); }
Tensor gelu(const Tensor& a) { return unary("gelu", cpu::UnaryOp::gelu, a); }
Tensor clamp(const Tensor& a, float lo, float hi) {
  if (!(lo <= hi)) fail("clamp", "lower bound " + std::to_string(lo) + " exceeds upper bound " + std::to_string(hi));
  return unary("clamp", cpu::UnaryOp::clamp, a, lo, hi);
}

Tensor dropout(const Tensor& a, float p, uint64_t seed) {
  if (!(p >= 0.f && p < 1.f)) fail("dropout", "probability must be in [0, 1), got " + std::to_string(p));
  if (p == 0.f) return a;
  check_cpu("dropout", {&a});
  check_float("dropout", a, "input");
  Tensor x = dense(a);
  Tensor out = Tensor::empty(a.shape(), DType::f32);
  Tensor mask = Tensor::empty(a.shape(), DType::u8);
  cpu::dropout(x.data<float>(), out.data<float>(), mask.data<uint8_t>(), a.numel(), p, seed);
  if (autograd::needs_grad({&a})) {
    const float scale = 1.f / (1.f - p);
    autograd::record("dropout", out, {a}, [mask, scale](const Tensor& g) {
      Tensor gd = dense(g);
      Tensor gx = Tensor::empty(gd.shape(), DType::f32);
      cpu::masked_scale(gd.data<float>(), mask.data<uint8_t>(), gx.data<float>(), gd.numel(), scale);
      return std::vector<Tensor>{gx};
    });
  }
  return out;
}

}  // namespace scion::ops
