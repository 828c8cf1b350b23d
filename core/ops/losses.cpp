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
  const Backend& be = backend_for(op, {&logits, &targets});
  check_float(op, logits, "logits");
  auto [rows, V] = rows_of(op, logits);
  Shape want(logits.shape().begin(), logits.shape().end() - 1);
  if (targets.shape() != want && !(targets.dim() == 1 && targets.numel() == rows))
    fail(op, "targets " + targets.desc() + " do not match logits " + logits.desc() + " (expected " +
                 shape_str(want) + ")");
  Tensor X = dense(logits), Tg = dense_index(op, targets, "targets");
  const Device dev = logits.device();
  Tensor loss_rows = Tensor::empty({rows}, DType::f32, dev), lse = Tensor::empty({rows}, DType::f32, dev);
  Tensor count_bad = Tensor::empty({2}, DType::i64, dev);  // (counted rows, first bad row)
  be.cross_entropy_forward(fptr(X), ptr<int64_t>(Tg), rows, V, ignore_index, fptr(loss_rows), fptr(lse),
                           ptr<int64_t>(count_bad), ptr<int64_t>(count_bad) + 1);
  // One host read of (count, bad) (a synchronisation on cuda): the mean's scale and the error.
  const std::vector<int64_t> cb = dev.is_cpu() ? std::vector<int64_t>{ptr<int64_t>(count_bad)[0],
                                                                        ptr<int64_t>(count_bad)[1]}
                                               : count_bad.to_vector_i64();
  const int64_t count = cb[0], bad = cb[1];
  if (bad >= 0)
    fail(op, "target " + std::to_string(read_i64(Tg.view({-1}), bad)) + " at row " + std::to_string(bad) +
                 " is outside [0, " + std::to_string(V) + ") and is not ignore_index " + std::to_string(ignore_index) +
                 " (logits " + logits.desc() + ", targets " + targets.desc() + ")");
  const float scale = count > 0 ? 1.f / float(count) : 0.f;
  Tensor out = Tensor::empty({}, DType::f32, dev);
  be.sum_all(fptr(loss_rows), rows, fptr(out));
  be.scale_inplace(fptr(out), 1, scale);
  if (autograd::needs_grad({&logits})) {
    Shape ls = logits.shape();
    autograd::record(op, out, {logits, targets}, [=](const Tensor& g) {
      const Backend& bb = backend_for("cross_entropy", {&X, &g});
      Tensor gx = Tensor::empty(ls, DType::f32, dev);
      bb.cross_entropy_backward(fptr(X), ptr<int64_t>(Tg), fptr(lse), rows, V, ignore_index, scale * g.item(),
                                fptr(gx));
      return std::vector<Tensor>{gx, Tensor()};
    });
  }
  return out;
}

namespace {
Tensor soft_targets(const char* op, const Tensor& logits, const Tensor& target_logits, float T,
                    const Tensor& row_mask, bool kl) {
  const Backend& be = backend_for(op, {&logits, &target_logits, row_mask.defined() ? &row_mask : nullptr});
  check_float(op, logits, "logits");
  check_float(op, target_logits, "target logits");
  if (logits.shape() != target_logits.shape())
    fail(op, "logits " + logits.desc() + " and target logits " + target_logits.desc() + " differ in shape");
  if (!(T > 0.f)) fail(op, "temperature must be > 0, got " + std::to_string(T));
  auto [rows, V] = rows_of(op, logits);
  Tensor M;
  int64_t count = rows;
  if (row_mask.defined()) {
    check_dtype(op, row_mask, DType::u8, "row_mask");
    if (row_mask.numel() != rows)
      fail(op, "row_mask " + row_mask.desc() + " must have one entry per row (" + std::to_string(rows) + ")");
    M = dense(row_mask);
    count = 0;
    const Tensor Mh = M.device().is_cpu() ? M : M.to(Device::cpu());  // the count is a host number
    for (int64_t r = 0; r < rows; ++r) count += Mh.data<uint8_t>()[r] ? 1 : 0;
  }
  Tensor X = dense(logits), Tt = dense(target_logits);
  const Device dev = logits.device();
  Tensor loss_rows = Tensor::empty({rows}, DType::f32, dev), lx = Tensor::empty({rows}, DType::f32, dev),
         lt = Tensor::empty({rows}, DType::f32, dev);
  const uint8_t* mp = M.defined() ? ptr<uint8_t>(M) : nullptr;
  be.soft_cross_entropy_forward(fptr(X), fptr(Tt), mp, rows, V, T, kl, fptr(loss_rows), fptr(lx), fptr(lt));
  const float scale = count > 0 ? 1.f / float(count) : 0.f;
  Tensor out = Tensor::empty({}, DType::f32, dev);
  be.sum_all(fptr(loss_rows), rows, fptr(out));
  be.scale_inplace(fptr(out), 1, scale);
  if (autograd::needs_grad({&logits, &target_logits})) {
    const bool gxs = logits.requires_grad(), gts = target_logits.requires_grad();
    Shape ls = logits.shape();
    autograd::record(op, out, {logits, target_logits}, [=](const Tensor& g) {
      const Backend& bb = backend_for(op, {&X, &g});
      Tensor gx = gxs ? Tensor::empty(ls, DType::f32, dev) : Tensor();
      Tensor gt = gts ? Tensor::empty(ls, DType::f32, dev) : Tensor();
      bb.soft_cross_entropy_backward(fptr(X), fptr(Tt), M.defined() ? ptr<uint8_t>(M) : nullptr, fptr(lx), fptr(lt),
                                     fptr(loss_rows), rows, V, T, kl, scale * g.item(), gxs ? fptr(gx) : nullptr,
                                     gts ? fptr(gt) : nullptr);
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
