// Fused softmax cross-entropy (hard and soft targets), KL divergence and MSE.
#include "ops/common.h"

namespace scion::ops {
using namespace detail;

namespace {
// logits [.., V] -> rows x V
std::pair<int64_t, int64_t> rows_of(const char* op, const Tensor& logits) {
  if (logits.dim() < 1) fail(op, "logits need rank >= 1, got " + logits.desc());
  const int64_t V = logits.size(-1);
  if (V == 0) fail(op, "logits have an empty class axis: " + logits.desc());
  return {logits.numel() / V, V};
}
}  // namespace

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index) {
  const char* op = "cross_entropy";
  check_cpu(op, {&logits, &targets});
  check_float(op, logits, "logits");
  auto [rows, V] = rows_of(op, logits);
  Shape want(logits.shape().begin(), logits.shape().end() - 1);
  if (targets.shape() != want && !(targets.dim() == 1 && targets.numel() == rows))
    fail(op, "targets " + targets.desc() + " do not match logits " + logits.desc() + " (expected " +
                 shape_str(want) + ")");
  Tensor X = dense(logits), Tg = dense_index(op, targets, "targets");
  Tensor loss_rows = Tensor::empty({rows}, DType::f32), lse = Tensor::empty({rows}, DType::f32);
  int64_t bad = -1;
  const int64_t count = cpu::cross_entropy_forward(X.data<float>(), Tg.data<int64_t>(), rows, V, ignore_index,
                                                   loss_rows.data<float>(), lse.data<float>(), &bad);
  if (bad >= 0)
    fail(op, "target " + std::to_string(Tg.data<int64_t>()[bad]) + " at row " + std::to_string(bad) +
                 " is outside [0, " + std::to_string(V) + ") and is not ignore_index " + std::to_string(ignore_index) +
                 " (logits " + logits.desc() + ", targets " + targets.desc() + ")");
  const float scale = count > 0 ? 1.f / float(count) : 0.f;
  Tensor out = Tensor::scalar(float(cpu::sum_all(loss_rows.data<float>(), rows)) * scale);
  if (autograd::needs_grad({&logits})) {
    Shape ls = logits.shape();
    autograd::record(op, out, {logits, targets}, [=](const Tensor& g) {
      Tensor gx = Tensor::empty(ls, DType::f32);
      cpu::cross_entropy_backward(X.data<float>(), Tg.data<int64_t>(), lse.data<float>(), rows, V, ignore_index,
                                  scale * g.item(), gx.data<float>());
      return std::vector<Tensor>{gx, Tensor()};
    });
  }
  return out;
}

namespace {
Tensor soft_targets(const char* op, const Tensor& logits, const Tensor& target_logits, float T,
                    const Tensor& row_mask, bool kl) {
  check_cpu(op, {&logits, &target_logits});
  check_float(op, logits, "logits");
  check_float(op, target_logits, "target logits");
  if (logits.shape() != target_logits.shape())
    fail(op, "logits " + logits.desc() + " and target logits " + target_logits.desc() + " differ in shape");
  if (!(T > 0.f)) fail(op, "temperature must be > 0, got " + std::to_string(T));
  auto [rows, V] = rows_of(op, logits);
  Tensor M;
  int64_t count = rows;
  if (row_mask.defined()) {
    check_cpu(op, {&row_mask});
    check_dtype(op, row_mask, DType::u8, "row_mask");
    if (row_mask.numel() != rows)
      fail(op, "row_mask " + row_mask.desc() + " must have one entry per row (" + std::to_string(rows) + ")");
    M = dense(row_mask);
    count = 0;
    for (int64_t r = 0; r < rows; ++r) count += M.data<uint8_t>()[r] ? 1 : 0;
  }
  Tensor X = dense(logits), Tt = dense(target_logits);
  Tensor loss_rows = Tensor::empty({rows}, DType::f32), lx = Tensor::empty({rows}, DType::f32),
         lt = Tensor::empty({rows}, DType::f32);
  const uint8_t* mp = M.defined() ? M.data<uint8_t>() : nullptr;
  cpu::soft_cross_entropy_forward(X.data<float>(), Tt.data<float>(), mp, rows, V, T, kl, loss_rows.data<float>(),
                                  lx.data<float>(), lt.data<float>());
  const float scale = count > 0 ? 1.f / float(count) : 0.f;
  Tensor out = Tensor::scalar(float(cpu::sum_all(loss_rows.data<float>(), rows)) * scale);
  if (autograd::needs_grad({&logits, &target_logits})) {
    const bool gxs = logits.requires_grad(), gts = target_logits.requires_grad();
    Shape ls = logits.shape();
    autograd::record(op, out, {logits, target_logits}, [=](const Tensor& g) {
      Tensor gx = gxs ? Tensor::empty(ls, DType::f32) : Tensor();
      Tensor gt = gts ? Tensor::empty(ls, DType::f32) : Tensor();
      cpu::soft_cross_entropy_backward(X.data<float>(), Tt.data<float>(), M.defined() ? M.data<uint8_t>() : nullptr,
                                       lx.data<float>(), lt.data<float>(), loss_rows.data<float>(), rows, V, T, kl,
                                       scale * g.item(), gxs ? gx.data<float>() : nullptr,
                                       gts ? gt.data<float>() : nullptr);
      return std::vector<Tensor>{gx, gt};
    });
  }
  return out;
}
}  // namespace

Tensor soft_cross_entropy(const Tensor& logits, const Tensor& target_logits, float temperature,
                          const Tensor& row_mask) {
  return soft_targets("soft_cross_entropy", logits, target_logits, temperature, row_mask, false);
}

Tensor kl_div(const Tensor& logits, const Tensor& target_logits, float temperature, const Tensor& row_mask) {
  return soft_targets("kl_div", logits, target_logits, temperature, row_mask, true);
}

Tensor mse(const Tensor& a, const Tensor& b) {
  if (a.defined() && b.defined() && a.shape() != b.shape())
    fail("mse", "shapes differ: " + a.desc() + " and " + b.desc());
  Tensor d = sub(a, b);
  return mean_all(mul(d, d));
}

}  // namespace scion::ops
