// The LM head fused with its cross-entropy: loss = CE(x · Wᵀ + b, targets) without the
// [rows, V] logits. Rows go through in chunks; each chunk's logits live in one reused buffer,
// become their own gradient in place (softmax − one-hot; one pass per row, in cache, for the
// loss and the gradient), and feed the two gradient GEMMs at once, so the forward pass also
// computes every gradient (they are scaled by the upstream gradient in backward). Three GEMMs
// in all, as unfused, and no recomputation.
//
// Determinism: the chunks are cut by shape only and the weight gradient sums them in order,
// so the bits do not depend on the thread count. Against the unfused ops, the loss and the
// input gradient see the same per-row arithmetic; the weight and bias gradients add the rows
// chunk by chunk instead of in one GEMM, which changes their rounding (f32: ~1e-6 relative).
#include <algorithm>

#include "ops/common.h"
#include "scion/precision.h"

namespace scion::ops {
using namespace detail;

namespace {

// At least 512 rows per chunk: the GEMMs read all of W once per chunk, and with fewer rows
// W's traffic and the weight gradient's read-modify-write (beta 1 after the first chunk) outgrow
// the GEMMs (bench_lm_head 1024 256 50304 on the 50304-word head, two threads, against the
// unfused ops: f32 0.64x / 0.92x / 0.99x / 1.02x at 64 / 128 / 256 / 512 rows, bf16 0.88x /
// 1.04x / 1.07x / 1.16x). 512 rows of that head are 103 MB of f32 logits, half the [1024, V]
// logits of the benchmark batch. Small vocabularies take more rows, up to 32 MB per chunk.
int64_t default_chunk_rows(int64_t V) {
  const int64_t by_size = (int64_t(32) << 20) / (4 * std::max<int64_t>(V, 1));
  return std::max<int64_t>(512, by_size);
}

}  // namespace

Tensor linear_cross_entropy(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& targets,
                            int64_t ignore_index, int64_t chunk_rows) {
  const char* op = "linear_cross_entropy";
  const Backend& be = backend_for(op, {&x, &w, &targets, bias.defined() ? &bias : nullptr});
  check_float(op, x, "input");
  check_float(op, w, "weight");
  if (w.dim() != 2) fail(op, "weight must be [V, C], got " + w.desc());
  if (x.dim() < 1) fail(op, "input must have rank >= 1, got " + x.desc());
  const int64_t V = w.size(0), C = w.size(1);
  if (V == 0) fail(op, "weight has no classes: " + w.desc());
  if (x.size(-1) != C)
    fail(op, "input " + x.desc() + " has " + std::to_string(x.size(-1)) + " features but weight " + w.desc() +
                 " ([V, C]) expects " + std::to_string(C));
  if (bias.defined()) {
    check_float(op, bias, "bias");
    if (bias.dim() != 1 || bias.size(0) != V) fail(op, "bias must be [" + std::to_string(V) + "], got " + bias.desc());
  }
  if (chunk_rows < 0) fail(op, "chunk_rows must be >= 0 (0 = automatic), got " + std::to_string(chunk_rows));
  const Shape want(x.shape().begin(), x.shape().end() - 1);
  const int64_t rows = shape_numel(want);
  if (targets.shape() != want && !(targets.dim() == 1 && targets.numel() == rows))
    fail(op, "targets " + targets.desc() + " do not match input " + x.desc() + " (expected " + shape_str(want) + ")");

  Tensor X = dense(x), W = dense(w), B = bias.defined() ? dense(bias) : Tensor(), Tg = dense_index(op, targets, "targets");
  const Device dev = x.device();
  const int64_t* tg = ptr<int64_t>(Tg);
  // The targets are checked and counted on the host (a copy from the device on cuda).
  const Tensor Tg_host = dev.is_cpu() ? Tg : Tg.to(Device::cpu());
  const int64_t* tgh = Tg_host.data<int64_t>();
  int64_t count = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = tgh[r];
    if (t == ignore_index) continue;
    if (t < 0 || t >= V)
      fail(op, "target " + std::to_string(t) + " at row " + std::to_string(r) + " is outside [0, " + std::to_string(V) +
                   ") and is not ignore_index " + std::to_string(ignore_index) + " (input " + x.desc() + ", targets " +
                   targets.desc() + ")");
    ++count;
  }
  const float scale = count > 0 ? 1.f / float(count) : 0.f;

  const bool grad = autograd::needs_grad({&x, &w, &bias});
  const bool gx = grad && x.requires_grad(), gw = grad && w.requires_grad(),
             gb = grad && bias.defined() && bias.requires_grad();
  const int64_t R = std::min(rows, chunk_rows > 0 ? chunk_rows : default_chunk_rows(V));
  Tensor loss_rows = Tensor::empty({rows}, DType::f32, dev), lse = Tensor::empty({rows}, DType::f32, dev);
  Tensor dx = gx ? Tensor::empty(x.shape(), DType::f32, dev) : Tensor();
  // The first chunk writes dw (beta 0), the others add to it; no rows, no chunk: zeros.
  Tensor dw = !gw ? Tensor() : rows > 0 ? Tensor::empty({V, C}, DType::f32, dev) : Tensor::zeros({V, C}, DType::f32, dev);
  Tensor db = gb ? Tensor::zeros({V}, DType::f32, dev) : Tensor();
  Tensor db_chunk = gb ? Tensor::empty({V}, DType::f32, dev) : Tensor();
  // one chunk's logits, then their gradient
  Tensor z = Tensor::empty({std::max<int64_t>(R, 1), V}, DType::f32, dev);
  const float* xp = fptr(X);
  const float* wp = fptr(W);
  float* zp = fptr(z);
  // bf16 GEMMs (precision = "bf16") round their inputs; W is rounded once here instead of by
  // each chunk's two GEMMs, and each chunk's x and gradient once for their two GEMMs each.
  const bool bf16 = matmul_precision() == MatmulPrecision::bf16;
  // Where the bf16 GEMM is emulated, a rounded operand is f32 (Backend::bf16_operand_bytes):
  // the chunk's gradient is then rounded in place in z, unless the bias gradient needs it
  // unrounded.
  Tensor wb, xb, zb;
  const bool z_in_place = bf16 && be.bf16_operand_bytes() == 4 && !gb;
  if (bf16) {
    wb = bf16_copy(be, wp, V, C, dev);
    xb = bf16_operand(be, std::max<int64_t>(R, 1), C, dev);
    if (grad && !z_in_place) zb = bf16_operand(be, std::max<int64_t>(R, 1), V, dev);
  }
  const void* wbp = bf16 ? wb.raw_data() : nullptr;
  void* xbp = bf16 ? xb.raw_data() : nullptr;
  void* zbp = !(bf16 && grad) ? nullptr : z_in_place ? static_cast<void*>(zp) : zb.raw_data();
  const int64_t one[1] = {1};
  for (int64_t r0 = 0; r0 < rows; r0 += R) {
    const int64_t n = std::min(R, rows - r0);
    const float* xr = xp + r0 * C;
    const float dw_beta = r0 == 0 ? 0.f : 1.f;
    if (bf16) {
      be.pack_bf16_matrix(xr, n, C, C, xbp);
      be.gemm_bf16_packed(false, true, n, V, C, 1.f, xbp, C, wbp, C, 0.f, zp, V);
    } else {
      be.gemm(MatmulPrecision::f32, false, true, n, V, C, 1.f, xr, C, wp, C, 0.f, zp, V);
    }
    if (B.defined()) be.add_bias_rows(zp, fptr(B), n, V);
    // Loss and gradient in one pass per row: z becomes scale · (softmax(z) − onehot(target))
    // in place (f32 GEMMs, or the bias gradient's row sums), and under bf16 GEMMs the same
    // gradient is written straight to bf16 for them, never stored in f32 only to be rounded.
    be.cross_entropy_rows(zp, tg + r0, n, V, ignore_index, scale, fptr(loss_rows) + r0, fptr(lse) + r0,
                          grad && (!bf16 || gb), grad ? zbp : nullptr);
    if (!grad) continue;
    if (bf16) {
      if (gx) be.gemm_bf16_packed(false, false, n, C, V, 1.f, zbp, V, wbp, C, 0.f, fptr(dx) + r0 * C, C);
      if (gw) be.gemm_bf16_packed(true, false, V, C, n, 1.f, zbp, V, xbp, C, dw_beta, fptr(dw), C);
    } else {
      if (gx) be.gemm(MatmulPrecision::f32, false, false, n, C, V, 1.f, zp, V, wp, C, 0.f, fptr(dx) + r0 * C, C);
      if (gw) be.gemm(MatmulPrecision::f32, true, false, V, C, n, 1.f, zp, V, xr, C, dw_beta, fptr(dw), C);
    }
    if (gb) {
      be.sum_rows(zp, fptr(db_chunk), n, V);
      const int64_t shape[1] = {V};
      be.binary(BinaryOp::add, fptr(db), one, fptr(db_chunk), one, fptr(db), shape, 1);  // db += chunk, in place
    }
  }
  // Summed as cross_entropy sums its rows, so the two agree on the loss.
  Tensor out = Tensor::empty({}, DType::f32, dev);
  be.sum_all(fptr(loss_rows), rows, fptr(out));
  be.scale_inplace(fptr(out), 1, scale);
  if (grad) {
    autograd::record(op, out, {x, w, bias, targets}, [=](const Tensor& g) {
      // The gradients were made for an upstream gradient of 1.
      const float s = g.item();
      auto scaled = [s](const Tensor& t) { return !t.defined() || s == 1.f ? t : mul_scalar(t, s); };
      return std::vector<Tensor>{scaled(dx), scaled(dw), scaled(db), Tensor()};
    });
  }
  return out;
}

}  // namespace scion::ops
