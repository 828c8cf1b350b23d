// The cuda table: kernels/cuda (CUDA kernels + cuBLASLt), on the current device and the legacy
// default stream. Compiled only in a build with the CUDA backend (SCION_HAVE_CUDA).
//
// Where the two kernel sets differ in shape, the adapters here close the gap:
//  * gemm/gemm_batched take the matmul precision as the CPU's do: under bf16 both operands are
//    rounded to bf16 into device scratch (cuda::strided_copy, round to nearest even as on the
//    CPU) and multiplied by cuBLASLt with f32 accumulation and f32 C.
//  * pack_bf16_matrix / gemm_bf16_packed (linear_cross_entropy's pre-rounded operands) become
//    a strided f32->bf16 copy and cuBLASLt's bf16 x bf16 -> f32 GEMM (cuda::gemm_ex): the same
//    contract (bf16 inputs, f32 accumulation), not the CPU's oneDNN blocks, so the bits differ.
//  * the attention key mask, the embedding's bad position, the cross-entropy's count and bad row
//    and sum_all's result are device memory (the table's convention).
#ifdef SCION_HAVE_CUDA
#include <string>

#include "cuda/cuda_kernels.h"
#include "ops/backend.h"
#include "scion/error.h"
#include "scion/tensor.h"

namespace scion::ops::detail {

namespace {

// Rounds a [batch?, rows, cols] f32 operand (leading dim ld, batch stride bs; bs 0 = shared) into
// a compact bf16 scratch tensor on the current device.
Tensor pack(const float* src, int64_t batch, int64_t rows, int64_t cols, int64_t ld, int64_t bs) {
  const int64_t nb = bs == 0 ? 1 : batch;
  Tensor out = Tensor::empty({nb, rows, cols}, DType::bf16, Device::cuda(cuda::current_device()));
  const int64_t shape[3] = {nb, rows, cols}, strides[3] = {bs, ld, 1};
  cuda::strided_copy(src, DType::f32, shape, strides, 3, out.raw_data(), DType::bf16);
  return out;
}

// bf16 operands (already rounded, compact leading dims), f32 C, one product: cuBLASLt's
// arguments for gemm_any's rounded copies and for the table's gemm_bf16_packed.
cuda::GemmArgs bf16_gemm_args(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A,
                              int64_t lda, const void* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cuda::GemmArgs g;
  g.trans_a = ta;
  g.trans_b = tb;
  g.M = M;
  g.N = N;
  g.K = K;
  g.alpha = alpha;
  g.beta = beta;
  g.ab_dtype = DType::bf16;
  g.c_dtype = DType::f32;
  g.A = A;
  g.lda = lda;
  g.B = B;
  g.ldb = ldb;
  g.C = C;
  g.ldc = ldc;
  return g;
}

void gemm_any(MatmulPrecision precision, bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K,
              float alpha, const float* A, int64_t lda, int64_t sa, const float* B, int64_t ldb, int64_t sb,
              float beta, float* C, int64_t ldc, int64_t sc) {
  if (precision != MatmulPrecision::bf16) {
    if (batch == 1) cuda::gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else cuda::gemm_batched(ta, tb, batch, M, N, K, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc);
    return;
  }
  const int64_t ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
  Tensor pa = pack(A, batch, ar, ac, lda, batch == 1 ? 0 : sa), pb = pack(B, batch, br, bc, ldb, batch == 1 ? 0 : sb);
  cuda::GemmArgs g = bf16_gemm_args(ta, tb, M, N, K, alpha, pa.raw_data(), ac, pb.raw_data(), bc, beta, C, ldc);
  g.batch = batch;
  g.stride_a = (batch == 1 || sa == 0) ? 0 : ar * ac;
  g.stride_b = (batch == 1 || sb == 0) ? 0 : br * bc;
  g.stride_c = sc;
  cuda::gemm_ex(g);
}

Backend make_cuda() {
  Backend b{};
  b.name = "cuda";
  b.kind = Device::Kind::cuda;
  b.binary = [](BinaryOp op, const float* a, const int64_t* as, const float* bb, const int64_t* bs, float* y,
                const int64_t* shape, int ndim) { cuda::binary(op, a, as, bb, bs, y, shape, ndim); };
  b.unary = [](UnaryOp op, const float* x, float* y, int64_t n, float p0, float p1) {
    cuda::unary(op, x, y, n, p0, p1);
  };
  b.unary_backward = [](UnaryOp op, const float* x, const float* y, const float* gy, float* gx, int64_t n, float p0,
                        float p1) { cuda::unary_backward(op, x, y, gy, gx, n, p0, p1); };
  b.dropout = [](const float* x, float* y, uint8_t* mask, int64_t n, float p, uint64_t seed) {
    cuda::dropout(x, y, mask, n, p, seed);
  };
  b.masked_scale = [](const float* x, const uint8_t* mask, float* y, int64_t n, float scale) {
    cuda::masked_scale(x, mask, y, n, scale);
  };
  b.strided_copy = [](const void* src, DType sd, const int64_t* shape, const int64_t* strides, int ndim, void* dst,
                      DType dd) { cuda::strided_copy(src, sd, shape, strides, ndim, dst, dd); };
  b.strided_assign = [](void* dst, const int64_t* ds, const void* src, const int64_t* shape, int ndim, size_t es) {
    cuda::strided_assign(dst, ds, src, shape, ndim, es);
  };
  b.copy = [](void* dst, const void* src, size_t bytes) {
    if (bytes) cuda::copy_async(dst, src, bytes, nullptr);
  };
  b.fill = [](void* dst, DType t, int64_t n, double v) { cuda::fill(dst, t, n, v); };
  b.fill_normal = [](float* y, int64_t n, uint64_t seed, float mean, float std) {
    cuda::fill_normal(y, n, seed, mean, std);
  };
  b.fill_uniform = [](float* y, int64_t n, uint64_t seed, float lo, float hi) {
    cuda::fill_uniform(y, n, seed, lo, hi);
  };
  b.fill_randint = [](int64_t* y, int64_t n, uint64_t seed, int64_t lo, int64_t hi) {
    cuda::fill_randint(y, n, seed, lo, hi);
  };
  b.reduce_sum = [](const float* x, float* y, int64_t outer, int64_t n, int64_t inner) {
    cuda::reduce_sum(x, y, outer, n, inner);
  };
  b.reduce_max = [](const float* x, float* y, int64_t* am, int64_t outer, int64_t n, int64_t inner) {
    cuda::reduce_max(x, y, am, outer, n, inner);
  };
  b.sum_all = [](const float* x, int64_t n, float* out) { cuda::sum_all(x, n, out); };
  b.sum_squares = [](const float* x, int64_t n, float* out, double* out_f64) {
    cuda::sum_squares(x, n, out, out_f64);
  };
  b.gemm = [](MatmulPrecision p, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
              int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    gemm_any(p, ta, tb, 1, M, N, K, alpha, A, lda, 0, B, ldb, 0, beta, C, ldc, 0);
  };
  b.gemm_batched = [](MatmulPrecision p, bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K,
                      float alpha, const float* A, int64_t lda, int64_t sa, const float* B, int64_t ldb, int64_t sb,
                      float beta, float* C, int64_t ldc, int64_t sc) {
    gemm_any(p, ta, tb, batch, M, N, K, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc);
  };
  b.bf16_operand_bytes = []() -> int64_t { return 2; };  // cuBLAS multiplies bf16 itself
  b.pack_bf16_matrix = [](const float* src, int64_t rows, int64_t cols, int64_t ld, void* dst) {
    const int64_t shape[2] = {rows, cols}, strides[2] = {ld, 1};
    cuda::strided_copy(src, DType::f32, shape, strides, 2, dst, DType::bf16);
  };
  b.gemm_bf16_packed = [](bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A,
                          int64_t lda, const void* B, int64_t ldb, float beta, float* C, int64_t ldc) {
    cuda::gemm_ex(bf16_gemm_args(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc));
  };
  b.add_bias_rows = [](float* y, const float* bias, int64_t rows, int64_t n) { cuda::add_bias_rows(y, bias, rows, n); };
  b.sum_rows = [](const float* gy, float* gb, int64_t rows, int64_t n) { cuda::sum_rows(gy, gb, rows, n); };
  b.softmax_rows = [](const float* x, float* y, int64_t rows, int64_t n, bool log) {
    cuda::softmax_rows(x, y, rows, n, log);
  };
  b.softmax_rows_backward = [](const float* y, const float* gy, float* gx, int64_t rows, int64_t n, bool log) {
    cuda::softmax_rows_backward(y, gy, gx, rows, n, log);
  };
  b.layernorm_forward = [](const float* x, const float* w, const float* bb, float* y, float* mean, float* rstd,
                           int64_t rows, int64_t n, float eps) {
    cuda::layernorm_forward(x, w, bb, y, mean, rstd, rows, n, eps);
  };
  b.layernorm_backward = [](const float* gy, const float* x, const float* w, const float* mean, const float* rstd,
                            float* gx, float* gw, float* gb, int64_t rows, int64_t n) {
    cuda::layernorm_backward(gy, x, w, mean, rstd, gx, gw, gb, rows, n);
  };
  b.rmsnorm_forward = [](const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t n, float eps) {
    cuda::rmsnorm_forward(x, w, y, rstd, rows, n, eps);
  };
  b.rmsnorm_backward = [](const float* gy, const float* x, const float* w, const float* rstd, float* gx, float* gw,
                          int64_t rows, int64_t n) { cuda::rmsnorm_backward(gy, x, w, rstd, gx, gw, rows, n); };
  b.rotary = [](const float* x, const float* c, const float* s, float* y, int64_t rows, int64_t T, int64_t H, int64_t D,
                bool inverse) { cuda::rotary(x, c, s, y, rows, T, H, D, inverse); };
  b.embedding_forward = [](const float* table, int64_t vocab, int64_t dim, const int64_t* ids, int64_t n, float* y,
                           int64_t* bad) { cuda::embedding_forward(table, vocab, dim, ids, n, y, bad); };
  b.embedding_backward = [](const float* gy, const int64_t* ids, int64_t n, int64_t dim, float* g, int64_t vocab) {
    cuda::embedding_backward(gy, ids, n, dim, g, vocab);
  };
  b.index_select = [](const float* x, const int64_t* idx, float* y, int64_t outer, int64_t n, int64_t k,
                      int64_t inner) { cuda::index_select(x, idx, y, outer, n, k, inner); };
  b.index_add = [](const float* gy, const int64_t* idx, float* gx, int64_t outer, int64_t n, int64_t k,
                   int64_t inner) { cuda::index_add(gy, idx, gx, outer, n, k, inner); };
  b.take = [](const float* x, const int64_t* off, float* y, int64_t total) { cuda::take(x, off, y, total); };
  b.take_backward = [](const float* gy, const int64_t* off, float* gx, int64_t lead, int64_t len, int64_t trail) {
    cuda::take_backward(gy, off, gx, lead, len, trail);
  };
  b.where = [](const uint8_t* c, const int64_t* cs, const float* x, const int64_t* xs, float xv, const float* y,
               const int64_t* ys, float yv, float* out, const int64_t* shape, int ndim) {
    cuda::where(c, cs, x, xs, xv, y, ys, yv, out, shape, ndim);
  };
  b.max_backward = [](const float* gy, const int64_t* am, float* gx, int64_t outer, int64_t n, int64_t inner) {
    cuda::max_backward(gy, am, gx, outer, n, inner);
  };
  b.attention_forward = [](const AttentionShape& s, const float* q, const float* k, const float* v, float* out,
                           float* lse) { cuda::attention_forward(s, q, k, v, out, lse); };
  b.attention_backward = [](const AttentionShape& s, const float* q, const float* k, const float* v, const float* out,
                            const float* lse, const float* gout, float* gq, float* gk, float* gv) {
    const int64_t C = s.H * s.D;
    if (s.grad_tstride == 0 || s.grad_tstride == C) {
      cuda::attention_backward(s, q, k, v, out, lse, gout, gq, gk, gv);
      return;
    }
    // Strided gradients (attention_packed's thirds of one [B, T, 3C] gradient): the CUDA
    // kernels write contiguous [B, T, C] rows, so they go to scratch and are then assigned
    // into the strided destinations.
    const Device dev = Device::cuda(cuda::current_device());
    Tensor sq = Tensor::empty({s.B, s.T, C}, DType::f32, dev), sk = Tensor::empty({s.B, s.T, C}, DType::f32, dev),
           sv = Tensor::empty({s.B, s.T, C}, DType::f32, dev);
    cuda::attention_backward(s, q, k, v, out, lse, gout, static_cast<float*>(sq.raw_data()),
                             static_cast<float*>(sk.raw_data()), static_cast<float*>(sv.raw_data()));
    const int64_t shape[3] = {s.B, s.T, C}, strides[3] = {s.T * s.grad_tstride, s.grad_tstride, 1};
    cuda::strided_assign(gq, strides, sq.raw_data(), shape, 3, sizeof(float));
    cuda::strided_assign(gk, strides, sk.raw_data(), shape, 3, sizeof(float));
    cuda::strided_assign(gv, strides, sv.raw_data(), shape, 3, sizeof(float));
  };
  b.cross_entropy_forward = [](const float* logits, const int64_t* targets, int64_t rows, int64_t V, int64_t ignore,
                               float* loss_rows, float* lse, int64_t* count, int64_t* bad) {
    cuda::cross_entropy_forward(logits, targets, rows, V, ignore, loss_rows, lse, count, bad);
  };
  b.cross_entropy_backward = [](const float* logits, const int64_t* targets, const float* lse, int64_t rows,
                                int64_t V, int64_t ignore, float scale, float* g) {
    cuda::cross_entropy_backward(logits, targets, lse, rows, V, ignore, scale, g);
  };
  // The closest CUDA kernels to the CPU's one-pass rows: cross_entropy_forward_backward (one
  // launch, the gradient over the logits in place), then a bf16 copy of the gradient when asked.
  // Unlike the CPU, the logits are overwritten whenever a gradient is asked (grad_f32 false
  // with grad_bf16 set): linear_cross_entropy does not read them afterwards.
  b.cross_entropy_rows = [](float* logits, const int64_t* targets, int64_t rows, int64_t V, int64_t ignore,
                            float scale, float* loss_rows, float* lse, bool grad_f32, void* grad_bf16) {
    if (!grad_f32 && !grad_bf16) {
      Tensor cb = Tensor::empty({2}, DType::i64, Device::cuda(cuda::current_device()));
      int64_t* p = static_cast<int64_t*>(cb.raw_data());
      cuda::cross_entropy_forward(logits, targets, rows, V, ignore, loss_rows, lse, p, p + 1);
      return;
    }
    cuda::cross_entropy_forward_backward(logits, targets, rows, V, ignore, scale, loss_rows, lse, logits);
    if (grad_bf16) {
      const int64_t shape[2] = {rows, V}, strides[2] = {V, 1};
      cuda::strided_copy(logits, DType::f32, shape, strides, 2, grad_bf16, DType::bf16);
    }
  };
  b.soft_cross_entropy_forward = [](const float* x, const float* t, const uint8_t* mask, int64_t rows, int64_t V,
                                    float T, bool kl, float* loss_rows, float* lse_x, float* lse_t) {
    cuda::soft_cross_entropy_forward(x, t, mask, rows, V, T, kl, loss_rows, lse_x, lse_t);
  };
  b.soft_cross_entropy_backward = [](const float* x, const float* t, const uint8_t* mask, const float* lse_x,
                                     const float* lse_t, const float* loss_rows, int64_t rows, int64_t V, float T,
                                     bool kl, float scale, float* gx, float* gt) {
    cuda::soft_cross_entropy_backward(x, t, mask, lse_x, lse_t, loss_rows, rows, V, T, kl, scale, gx, gt);
  };
  b.adamw = [](float* p, const float* g, float* m, float* v, int64_t n, float lr, float b1, float b2, float eps,
               float wd, float bc1, float bc2, float gs) { cuda::adamw(p, g, m, v, n, lr, b1, b2, eps, wd, bc1, bc2, gs); };
  b.scale_inplace = [](float* x, int64_t n, float s) { cuda::scale_inplace(x, n, s); };
  return b;
}

}  // namespace

// Always set: the allocator and the copies select devices too, so a cached "current" could be
// stale; cudaSetDevice to the current device is cheap.
void select_cuda_device(int index) { cuda::set_device(index); }

const Backend* backend_cuda() {
  static const Backend b = [] {
    const Backend t = make_cuda();
    check_backend_complete(t);
    return t;
  }();
  return &b;
}

}  // namespace scion::ops::detail
#endif  // SCION_HAVE_CUDA
