// CPU kernels: plain loops over raw pointers, parallelised with oneTBB where it pays.
// They assume their caller (core/ops) has checked shapes, dtypes and devices.
//
// Determinism: every output element is computed by one task in a fixed order, and every
// reduction over many elements sums fixed-size chunks then adds the chunk results in order,
// so results do not depend on the thread count or the scheduling.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/kernel_types.h"
#include "scion/dtype.h"

namespace scion::cpu {

using kernels::AttentionShape;
using kernels::BinaryOp;
using kernels::kMaxDims;
using kernels::UnaryOp;

// ---- elementwise --------------------------------------------------------------------

// y[i] = a[ia] op b[ib] over an N-d index with element strides (0 = broadcast). y is contiguous.
void binary(BinaryOp op, const float* a, const int64_t* a_strides, const float* b,
            const int64_t* b_strides, float* y, const int64_t* shape, int ndim);
// y = f(x) elementwise; p0/p1 are the op's scalars (clamp lo/hi, pow exponent, scalar).
void unary(UnaryOp op, const float* x, float* y, int64_t n, float p0, float p1);
// gx = gy * f'(x) (y = f(x) is passed for ops whose derivative is cheaper from y).
void unary_backward(UnaryOp op, const float* x, const float* y, const float* gy, float* gx,
                    int64_t n, float p0, float p1);

// Copies an N-d strided view of src (element strides) into contiguous dst, converting dtype.
void strided_copy(const void* src, DType src_dtype, const int64_t* shape, const int64_t* strides,
                  int ndim, void* dst, DType dst_dtype);
void fill(void* dst, DType dtype, int64_t n, double value);

// ---- random (counter-based: value i depends only on (seed, i)) -------------------------
void fill_normal(float* y, int64_t n, uint64_t seed, float mean, float std);
void fill_uniform(float* y, int64_t n, uint64_t seed, float lo, float hi);
void fill_randint(int64_t* y, int64_t n, uint64_t seed, int64_t lo, int64_t hi);
// keep[i] = uniform(seed, i) >= p; y = keep ? x * scale : 0 (mask is written as u8).
void dropout(const float* x, float* y, uint8_t* mask, int64_t n, float p, uint64_t seed);
void masked_scale(const float* x, const uint8_t* mask, float* y, int64_t n, float scale);

// ---- reductions over the middle axis of [outer, n, inner] -----------------------------
void reduce_sum(const float* x, float* y, int64_t outer, int64_t n, int64_t inner);
void reduce_max(const float* x, float* y, int64_t* argmax, int64_t outer, int64_t n, int64_t inner);
double sum_all(const float* x, int64_t n);
double sum_squares(const float* x, int64_t n);

// ---- GEMM (row-major) ----------------------------------------------------------------------
// C[M,N] = alpha * op(A) op(B) + beta * C, op = optional transpose; leading dims in elements.
// The caller says the precision (core owns it: scion/precision.h): f32 multiplies the inputs
// as they are (gemm_f32), bf16 rounds both to bf16 first and accumulates in f32
// (gemm_bf16_inputs). C stays f32. Both cut C into the shape-only blocks of gemm_blocks.h, so
// the bits do not depend on the thread count. gemm.cpp.
void gemm(MatmulPrecision precision, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
// The f32 product, each block through oneDNN's f32 matmul or OpenBLAS (gemm_f32_engine).
// gemm_f32.cpp.
void gemm_f32(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
              int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
// Which library multiplies each f32 block: oneDNN, or OpenBLAS with SCION_CPU_GEMM=openblas.
// The environment is read once; a bad value throws.
enum class GemmEngine { onednn, openblas };
GemmEngine gemm_f32_engine();
// The bf16 products (gemm_bf16.cpp). gemm_bf16_native: whether oneDNN multiplies bf16 in
// hardware here (AVX-512 and up); false on an AVX2 CPU or with SCION_CPU_BF16=emulate (read
// once; a bad value throws), and the bf16 GEMMs are then emulated in f32.
bool gemm_bf16_native();
void gemm_bf16_inputs(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                      int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
// The bf16 GEMM on inputs rounded once by the caller (an operand several GEMMs read, such as
// linear_cross_entropy's weight): pack_bf16_matrix rounds rows x cols (leading dim ld) into a
// compact row-major copy; gemm_bf16_packed takes such copies (leading dims la, lb). A copy's
// elements are bf16 bits where the bf16 GEMM runs in hardware, and the same rounded values
// held as f32 where it is emulated (bf16_operand_bytes() 2 or 4): the emulation then
// multiplies the copies as they are, with no widening per product.
int64_t bf16_operand_bytes();
void pack_bf16_matrix(const float* src, int64_t rows, int64_t cols, int64_t ld, void* dst);
void gemm_bf16_packed(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const void* A,
                      int64_t lda, const void* B, int64_t ldb, float beta, float* C, int64_t ldc);
// batch of independent GEMMs with element strides between batch items (0 = shared).
void gemm_batched(MatmulPrecision precision, bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K,
                  float alpha, const float* A, int64_t lda, int64_t stride_a, const float* B,
                  int64_t ldb, int64_t stride_b, float beta, float* C, int64_t ldc, int64_t stride_c);
// y[r, :] += bias (rows x n)
void add_bias_rows(float* y, const float* bias, int64_t rows, int64_t n);
// gb[j] = sum_r gy[r, j], deterministic
void sum_rows(const float* gy, float* gb, int64_t rows, int64_t n);

// ---- softmax family over the last axis (rows x n) -----------------------------------------
void softmax_rows(const float* x, float* y, int64_t rows, int64_t n, bool log);
// gx = y * (gy - sum(gy*y))  (softmax)   or  gx = gy - exp(y) * sum(gy)  (log-softmax)
void softmax_rows_backward(const float* y, const float* gy, float* gx, int64_t rows, int64_t n, bool log);

// ---- layernorm over the last axis ------------------------------------------------------
void layernorm_forward(const float* x, const float* w, const float* b, float* y, float* mean,
                       float* rstd, int64_t rows, int64_t n, float eps);
// gw/gb may be null. gw, gb are overwritten (not accumulated).
void layernorm_backward(const float* gy, const float* x, const float* w, const float* mean,
                        const float* rstd, float* gx, float* gw, float* gb, int64_t rows, int64_t n);

// ---- RMS normalisation over the last axis (rmsnorm.cpp) ------------------------------------
// y = x * rstd * w, rstd[r] = 1 / sqrt(mean(x[r]^2) + eps) (Llama's RMSNorm, in f32).
void rmsnorm_forward(const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t n, float eps);
// gw may be null; it is overwritten (not accumulated), deterministic.
void rmsnorm_backward(const float* gy, const float* x, const float* w, const float* rstd, float* gx, float* gw,
                      int64_t rows, int64_t n);

// ---- rotary position embedding (rotary.cpp) --------------------------------------------------
// x, y [rows, H, D] contiguous (row r at position r % T), cos/sin [T, D/2]: each head's pair
// (x[i], x[i + D/2]) turned by the angle whose cos/sin are cos[t, i]/sin[t, i] (Hugging Face's
// rotate_half), by the opposite angle when inverse (the backward). y may not alias x.
void rotary(const float* x, const float* cos, const float* sin, float* y, int64_t rows, int64_t T, int64_t H,
            int64_t D, bool inverse);

// ---- embedding / indexing ----------------------------------------------------------------
// ids are i64; out-of-range ids return the offending position via *bad (else -1).
void embedding_forward(const float* table, int64_t vocab, int64_t dim, const int64_t* ids,
                       int64_t n, float* y, int64_t* bad);
// g_table (vocab x dim) += scatter of gy rows by ids; deterministic (parallel over columns).
void embedding_backward(const float* gy, const int64_t* ids, int64_t n, int64_t dim, float* g_table);

// ---- indexing (indexing.cpp; twins in cuda/indexing.cu). Indices are checked by the caller. ----
// Contiguous src into a strided dst of the same dtype (elem_size bytes per element).
void strided_assign(void* dst, const int64_t* dst_strides, const void* src, const int64_t* shape, int ndim,
                    size_t elem_size);
// y[o, i, :] = x[o, idx[i], :]: [outer, n, inner] -> [outer, k, inner].
void index_select(const float* x, const int64_t* idx, float* y, int64_t outer, int64_t n, int64_t k, int64_t inner);
// gx[o, idx[i], :] += gy[o, i, :], i in order.
void index_add(const float* gy, const int64_t* idx, float* gx, int64_t outer, int64_t n, int64_t k, int64_t inner);
// y[e] = x[offsets[e]].
void take(const float* x, const int64_t* offsets, float* y, int64_t total);
// gx[offsets[e]] += gy[e] for e over [lead, len, trail]; each (lead, trail) adds its len in order.
void take_backward(const float* gy, const int64_t* offsets, float* gx, int64_t lead, int64_t len, int64_t trail);
// out = cond ? x : y over a broadcast shape (element strides, 0 = broadcast); null x / y = scalar xv / yv.
void where(const uint8_t* cond, const int64_t* c_strides, const float* x, const int64_t* x_strides, float xv,
           const float* y, const int64_t* y_strides, float yv, float* out, const int64_t* shape, int ndim);
// gx[o, argmax[o, j], j] = gy[o, j] (gx zeroed by the caller).
void max_backward(const float* gy, const int64_t* argmax, float* gx, int64_t outer, int64_t n, int64_t inner);

// ---- fused attention ---------------------------------------------------------------------
// AttentionShape (common/kernel_types.h) gives the q/k/v layout; the per-head GEMMs run at
// s.precision, as gemm() does.
// out is contiguous [B, T, H*D]; lse is [B, H, T] (log-sum-exp of the scaled scores per row).
void attention_forward(const AttentionShape& s, const float* q, const float* k, const float* v,
                       float* out, float* lse);
// gq/gk/gv are [B, T, H*D] with row stride grad_tstride (contiguous by default), overwritten.
void attention_backward(const AttentionShape& s, const float* q, const float* k, const float* v,
                        const float* out, const float* lse, const float* gout, float* gq,
                        float* gk, float* gv);

// ---- fused softmax cross-entropy (rows x V) ---------------------------------------------------
// loss_rows[r] = lse_r - x[r, t_r] (0 where ignored); returns the count of counted rows.
// A target outside [0, V) (and not ignore_index) is reported through *bad_row (else -1).
int64_t cross_entropy_forward(const float* logits, const int64_t* targets, int64_t rows, int64_t V,
                              int64_t ignore_index, float* loss_rows, float* lse, int64_t* bad_row);
// g[r, :] = scale * (softmax(x_r) - onehot(t_r)); zero for ignored rows.
void cross_entropy_backward(const float* logits, const int64_t* targets, const float* lse,
                            int64_t rows, int64_t V, int64_t ignore_index, float scale, float* g);
// Forward and backward of one chunk in a single pass per row, for the fused LM head: the row
// (V floats) is read from memory once and stays in cache for its max, its exponentials and its
// gradient. Targets must be valid (checked by the caller). Writes loss_rows and lse; with
// grad_f32 the logits are overwritten by g = scale * (softmax - onehot) (zero on ignored
// rows), with grad_bf16 (rows x V, compact) g is also or instead written rounded to bf16, as
// pack_bf16_matrix writes an operand (bf16_operand_bytes() per element; with 4, grad_bf16 may
// be the logits themselves, rounded in place). Without either the logits are left as they are. The loss has the bits of
// cross_entropy_forward's; g differs from cross_entropy_backward's by the rounding of
// exp(x - max) / sum against exp(x - lse) (about one ulp).
void cross_entropy_rows(float* logits, const int64_t* targets, int64_t rows, int64_t V, int64_t ignore_index,
                        float scale, float* loss_rows, float* lse, bool grad_f32, void* grad_bf16);
// Soft targets at temperature T: p = softmax(t/T), log q = log_softmax(x/T).
// kl=false: row value -sum p log q; kl=true: sum p (log p - log q). Rows with mask 0 give 0.
void soft_cross_entropy_forward(const float* x, const float* t, const uint8_t* mask, int64_t rows,
                                int64_t V, float T, bool kl, float* loss_rows, float* lse_x,
                                float* lse_t);
// gx = scale/T * (q - p); gt = scale/T * p * ((log p - log q) - rowvalue) for kl,
// and for cross-entropy gt = scale/T * p * (-log q - rowvalue). Either may be null.
void soft_cross_entropy_backward(const float* x, const float* t, const uint8_t* mask,
                                 const float* lse_x, const float* lse_t, const float* loss_rows,
                                 int64_t rows, int64_t V, float T, bool kl, float scale, float* gx,
                                 float* gt);

// ---- optimizer -------------------------------------------------------------------------------
void adamw(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
           float beta2, float eps, float weight_decay, float bias_correction1,
           float bias_correction2, float grad_scale);
void scale_inplace(float* x, int64_t n, float s);

// ---- threads -----------------------------------------------------------------------------
// OpenBLAS is held to one thread per call whatever n says: oneTBB owns the parallelism, and a
// threaded OpenBLAS serialises concurrent callers (gemm.cpp).
void set_blas_threads(int n);

}  // namespace scion::cpu
