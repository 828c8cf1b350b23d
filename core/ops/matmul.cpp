// Matrix products through BLAS, and the fused linear layer.
#include "ops/common.h"
#include "scion/precision.h"

namespace scion::ops {
using namespace detail;

namespace {

Shape leading(const Tensor& t) { return Shape(t.shape().begin(), t.shape().end() - 2); }

// The product without autograd. Leading dims: equal, or one side 2-D (shared).
Tensor matmul_raw(const Tensor& a_in, const Tensor& b_in, bool ta, bool tb) {
  const char* op = "matmul";
  const Backend& be = backend_for(op, {&a_in, &b_in});
  check_float(op, a_in, "left operand");
  check_float(op, b_in, "right operand");
  if (a_in.dim() < 2 || b_in.dim() < 2)
    fail(op, "both operands need rank >= 2, got " + a_in.desc() + " and " + b_in.desc());
  Tensor a = dense(a_in), b = dense(b_in);
  const int64_t M = ta ? a.size(-1) : a.size(-2), Ka = ta ? a.size(-2) : a.size(-1);
  const int64_t Kb = tb ? b.size(-1) : b.size(-2), N = tb ? b.size(-2) : b.size(-1);
  if (Ka != Kb)
    fail(op, "inner dimensions differ: " + a.desc() + (ta ? " (transposed)" : "") + " times " + b.desc() +
                 (tb ? " (transposed)" : ""));
  const Shape la = leading(a), lb = leading(b);
  if (!la.empty() && !lb.empty() && la != lb)
    fail(op, "batch dimensions differ: " + a.desc() + " and " + b.desc());
  Shape out_shape = la.empty() ? lb : la;
  const int64_t batch = shape_numel(out_shape);
  out_shape.push_back(M);
  out_shape.push_back(N);
  Tensor c = Tensor::empty(out_shape, DType::f32, a.device());
  const int64_t lda = a.size(-1), ldb = b.size(-1);
  if (lb.empty() && !ta) {  // one GEMM over all rows of a
    be.gemm(matmul_precision(), false, tb, batch * M, N, Ka, 1.f, fptr(a), lda, fptr(b), ldb, 0.f, fptr(c), N);
  } else {
    be.gemm_batched(matmul_precision(), ta, tb, batch, M, N, Ka, 1.f, fptr(a), lda, la.empty() ? 0 : M * Ka, fptr(b),
                    ldb, lb.empty() ? 0 : Ka * N, 0.f, fptr(c), N, M * N);
  }
  return c;
}

// Sums away leading dims so a gradient matches a shared 2-D operand.
Tensor reduce_to_rank2(const Tensor& g, const Tensor& like) {
  if (like.dim() == g.dim()) return g;
  std::vector<int64_t> axes;
  for (int64_t d = 0; d < g.dim() - 2; ++d) axes.push_back(d);
  return sum(g, axes, false);
}

Tensor flat_rows(const Tensor& t) { return dense(t).view({-1, t.size(-1)}); }

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  Tensor c = matmul_raw(a, b, ta, tb);
  if (autograd::needs_grad({&a, &b})) {
    Tensor A = a.detach(), B = b.detach();
    const bool ga = a.requires_grad(), gb = b.requires_grad();
    autograd::record("matmul", c, {a, b}, [A, B, ta, tb, ga, gb](const Tensor& g) {
      Tensor dA, dB;
      const bool b_shared = B.dim() == 2 && A.dim() > 2;
      if (ga) {
        dA = ta ? matmul_raw(B, g, tb, true) : matmul_raw(g, B, false, !tb);
        dA = reduce_to_rank2(dA, A);
      }
      if (gb) {
        if (b_shared && !ta) {  // one GEMM over all rows instead of a batch sum
          dB = tb ? matmul_raw(flat_rows(g), flat_rows(A), true, false)
                  : matmul_raw(flat_rows(A), flat_rows(g), true, false);
        } else {
          dB = tb ? matmul_raw(g, A, true, ta) : matmul_raw(A, g, !ta, false);
          dB = reduce_to_rank2(dB, B);
        }
      }
      return std::vector<Tensor>{dA, dB};
    });
  }
  return c;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias, bool w_in_out) {
  const char* op = "linear";
  const Backend& be = backend_for(op, {&x, &w, bias.defined() ? &bias : nullptr});
  check_float(op, x, "input");
  check_float(op, w, "weight");
  if (w.dim() != 2) fail(op, "weight must be 2-D, got " + w.desc());
  if (x.dim() < 1) fail(op, "input must have rank >= 1, got " + x.desc());
  const int64_t in = w_in_out ? w.size(0) : w.size(1), out_f = w_in_out ? w.size(1) : w.size(0);
  if (x.size(-1) != in)
    fail(op, "input " + x.desc() + " has " + std::to_string(x.size(-1)) + " features but weight " + w.desc() +
                 (w_in_out ? " ([in, out])" : " ([out, in])") + " expects " + std::to_string(in));
  if (bias.defined()) {
    check_float(op, bias, "bias");
    if (bias.dim() != 1 || bias.size(0) != out_f)
      fail(op, "bias must be [" + std::to_string(out_f) + "], got " + bias.desc());
  }
  Tensor X = dense(x), W = dense(w), Bb = bias.defined() ? dense(bias) : Tensor();
  const int64_t rows = shape_numel(Shape(x.shape().begin(), x.shape().end() - 1));  // in may be 0
  Shape out_shape = x.shape();
  out_shape.back() = out_f;
  const Device dev = x.device();
  const int64_t ldw = W.size(1);
  Tensor y = Tensor::empty(out_shape, DType::f32, dev);
  const bool grad = autograd::needs_grad({&x, &w, &bias});
  // bf16 GEMMs (precision = "bf16"): x and W are rounded once, here, and the rounded copies
  // serve the backward's two products as well (the gradient is rounded once for both), so
  // each operand is converted once per step instead of once per product. Same bits as
  // rounding inside each GEMM: the copies are the ones the GEMM would make.
  const bool bf16 = matmul_precision() == MatmulPrecision::bf16 && rows > 0;
  // One product of the layer, C = op(A) op(B): on the rounded copies under bf16, else in f32.
  auto product = [bf16](const Backend& b, bool ta, bool tb, int64_t M, int64_t N, int64_t K, const Tensor& A,
                        const Tensor& A16, int64_t lda, const Tensor& B, const Tensor& B16, int64_t ldb, float* C,
                        int64_t ldc) {
    if (bf16)
      b.gemm_bf16_packed(ta, tb, M, N, K, 1.f, A16.raw_data(), lda, B16.raw_data(), ldb, 0.f, C, ldc);
    else
      b.gemm(MatmulPrecision::f32, ta, tb, M, N, K, 1.f, fptr(A), lda, fptr(B), ldb, 0.f, C, ldc);
  };
  const Tensor Xb = bf16 ? bf16_copy(be, fptr(X), rows, in, dev) : Tensor();
  const Tensor Wb = bf16 ? bf16_copy(be, fptr(W), W.size(0), ldw, dev) : Tensor();
  product(be, false, !w_in_out, rows, out_f, in, X, Xb, in, W, Wb, ldw, fptr(y), out_f);
  if (Bb.defined()) be.add_bias_rows(fptr(y), fptr(Bb), rows, out_f);
  if (grad) {
    const bool gx = x.requires_grad(), gw = w.requires_grad(), gb = bias.defined() && bias.requires_grad();
    Shape x_shape = x.shape(), w_shape = w.shape();
    // The backward keeps what its products read: the rounded copies under bf16, else x and W.
    if (bf16) X = W = Tensor();
    autograd::record(op, y, {x, w, bias}, [=](const Tensor& g) {
      const Backend& bb = backend_for("linear", {&g});
      Tensor G = dense(g);
      Tensor dx, dw, db;
      const Tensor Gb = bf16 && (gx || gw) ? bf16_copy(bb, fptr(G), rows, out_f, dev) : Tensor();
      if (gx) {  // dx = g W^T  (W [in,out])  or  g W  (W [out,in])
        dx = Tensor::empty(x_shape, DType::f32, dev);
        product(bb, false, w_in_out, rows, in, out_f, G, Gb, out_f, W, Wb, ldw, fptr(dx), in);
      }
      if (gw) {  // dW = x^T g ([in,out])  or  g^T x ([out,in])
        dw = Tensor::empty(w_shape, DType::f32, dev);
        if (w_in_out)
          product(bb, true, false, in, out_f, rows, X, Xb, in, G, Gb, out_f, fptr(dw), out_f);
        else
          product(bb, true, false, out_f, in, rows, G, Gb, out_f, X, Xb, in, fptr(dw), in);
      }
      if (gb) {
        db = Tensor::empty({out_f}, DType::f32, dev);
        bb.sum_rows(fptr(G), fptr(db), rows, out_f);
      }
      return std::vector<Tensor>{dx, dw, db};
    });
  }
  return y;
}

}  // namespace scion::ops
