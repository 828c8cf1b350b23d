// In-place optimizer helpers: AdamW and global-norm clipping. Never recorded.
#include <cmath>

#include "ops/common.h"

namespace scion::ops {
using namespace detail;

void adamw_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, int64_t step, const AdamWConfig& c) {
  const char* op = "adamw_step";
  check_cpu(op, {&param, &grad, &m, &v});
  for (const Tensor* t : std::initializer_list<const Tensor*>{&param, &grad, &m, &v}) {
    check_float(op, *t, "tensor");
    if (!t->is_contiguous()) fail(op, "tensors must be contiguous, got " + t->desc());
  }
  if (grad.shape() != param.shape() || m.shape() != param.shape() || v.shape() != param.shape())
    fail(op, "param " + param.desc() + ", grad " + grad.desc() + ", m " + m.desc() + " and v " + v.desc() +
                 " must share one shape");
  if (step < 1) fail(op, "step counts from 1, got " + std::to_string(step));
  const float bc1 = 1.f - std::pow(c.beta1, float(step));
  const float bc2 = 1.f - std::pow(c.beta2, float(step));
  cpu::adamw(param.data<float>(), grad.data<float>(), m.data<float>(), v.data<float>(), param.numel(), c.lr,
             c.beta1, c.beta2, c.eps, c.weight_decay, bc1, bc2);
  ++param.impl().version;
}

float global_norm(const std::vector<Tensor>& tensors) {
  double s = 0.0;
  for (const Tensor& t : tensors) {
    if (!t.defined()) continue;
    check_cpu("global_norm", {&t});
    check_float("global_norm", t, "tensor");
    Tensor d = dense(t);
    s += cpu::sum_squares(d.data<float>(), d.numel());
  }
  return float(std::sqrt(s));
}

float clip_grad_norm(const std::vector<Tensor>& grads, float max_norm) {
  if (!(max_norm > 0.f)) fail("clip_grad_norm", "max_norm must be > 0, got " + std::to_string(max_norm));
  const float norm = global_norm(grads);
  if (norm > max_norm) {
    const float s = max_norm / (norm + 1e-6f);
    for (const Tensor& g : grads) {
      if (!g.defined()) continue;
      if (!g.is_contiguous()) fail("clip_grad_norm", "gradients must be contiguous, got " + g.desc());
      cpu::scale_inplace(g.data<float>(), g.numel(), s);
    }
  }
  return norm;
}

}  // namespace scion::ops
