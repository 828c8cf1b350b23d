// In-place optimizer helpers: AdamW and global-norm clipping. Never recorded.
#include <cmath>

#include "ops/common.h"

namespace scion::ops {
using namespace detail;

void adamw_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, int64_t step, const AdamWConfig& c) {
  const char* op = "adamw_step";
  const Backend& be = backend_for(op, {&param, &grad, &m, &v});
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
  be.adamw(fptr(param), fptr(grad), fptr(m), fptr(v), param.numel(), c.lr, c.beta1, c.beta2, c.eps,
           c.weight_decay, bc1, bc2, c.grad_scale);
  ++param.impl().version;
}

float global_norm(const std::vector<Tensor>& tensors) {
  // Each tensor's f64 sum of squares goes to one slot of a buffer on the tensors' device; one
  // host read of the buffer (a synchronisation on cuda), then the slots are added in order.
  const Tensor* first = nullptr;
  int64_t count = 0;
  for (const Tensor& t : tensors)
    if (t.defined()) {
      if (!first) first = &t;
      ++count;
    }
  if (!first) return 0.f;
  // No f64 dtype: the slots are 8-byte words of an i64 tensor, reinterpreted.
  Tensor sums = Tensor::empty({count}, DType::i64, first->device());
  double* sp = ptr<double>(sums);
  int64_t i = 0;
  for (const Tensor& t : tensors) {
    if (!t.defined()) continue;
    const Backend& be = backend_for("global_norm", {first, &t});
    check_float("global_norm", t, "tensor");
    Tensor d = dense(t);
    be.sum_squares(fptr(d), d.numel(), nullptr, sp + i++);
  }
  const Tensor host = sums.device().is_cpu() ? sums : sums.to(Device::cpu());
  const double* hp = ptr<double>(host);
  std::vector<double> vals(hp, hp + count);
  double s = 0.0;
  for (double v : vals) s += v;
  return float(std::sqrt(s));
}

float clip_factor(float norm, float max_norm) { return norm > max_norm ? max_norm / (norm + 1e-6f) : 1.f; }

float clip_grad_norm(const std::vector<Tensor>& grads, float max_norm) {
  if (!(max_norm > 0.f)) fail("clip_grad_norm", "max_norm must be > 0, got " + std::to_string(max_norm));
  const float norm = global_norm(grads);
  if (norm > max_norm) {
    const float s = clip_factor(norm, max_norm);
    for (const Tensor& g : grads) {
      if (!g.defined()) continue;
      if (!g.is_contiguous()) fail("clip_grad_norm", "gradients must be contiguous, got " + g.desc());
      backend_of("clip_grad_norm", g.device()).scale_inplace(fptr(g), g.numel(), s);
    }
  }
  return norm;
}

}  // namespace scion::ops
