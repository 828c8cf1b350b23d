// Softmax, log-softmax, layer normalisation and RMS normalisation over the last axis.
#include "ops/common.h"

namespace scion::ops {
using namespace detail;

namespace {
Tensor softmax_last(const char* name, const Tensor& a, bool log) {
  const Backend& be = backend_for(name, {&a});
  check_float(name, a, "input");
  if (a.dim() == 0) fail(name, "needs rank >= 1, got " + a.desc());
  Tensor x = dense(a);
  const int64_t n = a.size(-1), rows = n ? a.numel() / n : 0;
  Tensor y = Tensor::empty(a.shape(), DType::f32, a.device());
  be.softmax_rows(fptr(x), fptr(y), rows, n, log);
  if (autograd::needs_grad({&a})) {
    Tensor saved = y.detach();
    autograd::record(name, y, {a}, [name, saved, rows, n, log](const Tensor& g) {
      const Backend& bb = backend_for(name, {&saved, &g});
      Tensor gd = dense(g);
      Tensor gx = Tensor::empty(saved.shape(), DType::f32, saved.device());
      bb.softmax_rows_backward(fptr(saved), fptr(gd), fptr(gx), rows, n, log);
      return std::vector<Tensor>{gx};
    });
  }
  return y;
}

Tensor along_last(const char* name, const Tensor& a, int64_t axis, bool log) {
  const int64_t ax = wrap_axis(name, axis, a);
  if (ax == a.dim() - 1) return softmax_last(name, a, log);
  return softmax_last(name, a.transpose(ax, -1), log).transpose(ax, -1);
}
}  // namespace

Tensor softmax(const Tensor& a, int64_t axis) { return along_last("softmax", a, axis, false); }
Tensor log_softmax(const Tensor& a, int64_t axis) { return along_last("log_softmax", a, axis, true); }

Tensor layernorm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps) {
  const char* op = "layernorm";
  const Backend& be = backend_for(op, {&x, &weight, &bias});
  check_float(op, x, "input");
  check_float(op, weight, "weight");
  check_float(op, bias, "bias");
  if (x.dim() < 1) fail(op, "input needs rank >= 1, got " + x.desc());
  const int64_t n = x.size(-1);
  if (weight.shape() != Shape{n} || bias.shape() != Shape{n})
    fail(op, "weight " + weight.desc() + " and bias " + bias.desc() + " must both be [" + std::to_string(n) +
                 "] for input " + x.desc());
  Tensor X = dense(x), W = dense(weight), B = dense(bias);
  const int64_t rows = n ? x.numel() / n : 0;
  const Device dev = x.device();
  Tensor y = Tensor::empty(x.shape(), DType::f32, dev);
  Tensor mean = Tensor::empty({rows}, DType::f32, dev), rstd = Tensor::empty({rows}, DType::f32, dev);
  be.layernorm_forward(fptr(X), fptr(W), fptr(B), fptr(y), fptr(mean), fptr(rstd), rows, n, eps);
  if (autograd::needs_grad({&x, &weight, &bias})) {
    const bool gw = weight.requires_grad(), gb = bias.requires_grad();
    autograd::record(op, y, {x, weight, bias}, [=](const Tensor& g) {
      const Backend& bb = backend_for("layernorm", {&X, &g});
      Tensor G = dense(g);
      Tensor dx = Tensor::empty(X.shape(), DType::f32, dev);
      Tensor dw = gw ? Tensor::empty({n}, DType::f32, dev) : Tensor();
      Tensor db = gb ? Tensor::empty({n}, DType::f32, dev) : Tensor();
      bb.layernorm_backward(fptr(G), fptr(X), fptr(W), fptr(mean), fptr(rstd), fptr(dx), gw ? fptr(dw) : nullptr,
                            gb ? fptr(db) : nullptr, rows, n);
      return std::vector<Tensor>{dx, dw, db};
    });
  }
  return y;
}

Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps) {
  const char* op = "rms_norm";
  const Backend& be = backend_for(op, {&x, &weight});
  check_float(op, x, "input");
  check_float(op, weight, "weight");
  if (x.dim() < 1) fail(op, "input needs rank >= 1, got " + x.desc());
  const int64_t n = x.size(-1);
  if (weight.shape() != Shape{n})
    fail(op, "weight " + weight.desc() + " must be [" + std::to_string(n) + "] for input " + x.desc());
  Tensor X = dense(x), W = dense(weight);
  const int64_t rows = n ? x.numel() / n : 0;
  const Device dev = x.device();
  Tensor y = Tensor::empty(x.shape(), DType::f32, dev);
  Tensor rstd = Tensor::empty({rows}, DType::f32, dev);
  be.rmsnorm_forward(fptr(X), fptr(W), fptr(y), fptr(rstd), rows, n, eps);
  if (autograd::needs_grad({&x, &weight})) {
    const bool gw = weight.requires_grad();
    autograd::record(op, y, {x, weight}, [=](const Tensor& g) {
      const Backend& bb = backend_for("rms_norm", {&X, &g});
      Tensor G = dense(g);
      Tensor dx = Tensor::empty(X.shape(), DType::f32, dev);
      Tensor dw = gw ? Tensor::empty({n}, DType::f32, dev) : Tensor();
      bb.rmsnorm_backward(fptr(G), fptr(X), fptr(W), fptr(rstd), fptr(dx), gw ? fptr(dw) : nullptr, rows, n);
      return std::vector<Tensor>{dx, dw};
    });
  }
  return y;
}

Tensor layernorm_masked(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& mask, float eps) {
  const char* op = "layernorm_masked";
  backend_for(op, {&x, &weight, &bias, &mask});
  check_float(op, x, "input");
  check_float(op, mask, "mask");
  if (x.dim() < 1) fail(op, "input needs rank >= 1, got " + x.desc());
  const int64_t n = x.size(-1);
  if (weight.shape() != Shape{n} || bias.shape() != Shape{n} || mask.shape() != Shape{n})
    fail(op, "weight " + weight.desc() + ", bias " + bias.desc() + " and mask " + mask.desc() + " must all be [" +
                 std::to_string(n) + "] for input " + x.desc());
  double total = 0;  // the mask's total, read on the host (a copy from the device on cuda)
  for (float m : mask.contiguous().to_vector()) total += m;
  if (!(total > 0)) fail(op, "mask " + mask.desc() + " sums to " + std::to_string(total) + "; it must be positive");
  if (!mask.requires_grad()) {
    // A constant of the schedule (MSG's ramp): its total is a number, not a tape entry.
    const float inv = float(1.0 / total);
    Tensor m = mask.detach();
    Tensor mean = mul_scalar(sum(mul(x, m), {-1}, true), inv);
    Tensor d = sub(x, mean);
    Tensor var = mul_scalar(sum(mul(mul(d, d), m), {-1}, true), inv);
    Tensor y = add(mul(mul(d, rsqrt(add_scalar(var, eps))), weight), bias);
    return mul(y, m);
  }
  // A trained mask (a plugin's learned gate under MSG's rule): the same function, with the mask's total
  // on the tape too, so the statistics pass gradients to the mask as well as the output does.
  Tensor inv = pow_scalar(sum_all(mask), -1.f);
  Tensor mean = mul(sum(mul(x, mask), {-1}, true), inv);
  Tensor d = sub(x, mean);
  Tensor var = mul(sum(mul(mul(d, d), mask), {-1}, true), inv);
  Tensor y = add(mul(mul(d, rsqrt(add_scalar(var, eps))), weight), bias);
  return mul(y, mask);
}

Tensor layernorm_kept(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& mask, float eps) {
  const char* op = "layernorm_kept";
  backend_for(op, {&x, &weight, &bias, &mask});
  check_float(op, x, "input");
  check_float(op, mask, "mask");
  if (x.dim() < 1) fail(op, "input needs rank >= 1, got " + x.desc());
  const int64_t n = x.size(-1);
  if (weight.shape() != Shape{n} || bias.shape() != Shape{n} || mask.shape() != Shape{n})
    fail(op, "weight " + weight.desc() + ", bias " + bias.desc() + " and mask " + mask.desc() + " must all be [" +
                 std::to_string(n) + "] for input " + x.desc());
  std::vector<float> kept = mask.contiguous().to_vector();
  int64_t count = 0;
  for (float& m : kept) count += (m = m != 0.f ? 1.f : 0.f) != 0.f;
  if (count == 0) fail(op, "mask " + mask.desc() + " keeps no feature");
  // The 0/1 indicator of the kept features is a constant: only their values are differentiated.
  const Tensor k = Tensor::from_vector(kept, {n}, x.device());
  const float inv = 1.f / float(count);
  Tensor mean = mul_scalar(sum(mul(x, k), {-1}, true), inv);
  Tensor d = sub(x, mean);
  Tensor var = mul_scalar(sum(mul(mul(d, d), k), {-1}, true), inv);
  Tensor y = add(mul(mul(d, rsqrt(add_scalar(var, eps))), weight), bias);
  return mul(y, mask);
}

}  // namespace scion::ops
