// The one dispatch point of the tensor ops: a table of kernels per device kind (as ggml's
// backends and Marian's per-device function tables), chosen by backend_for() from the devices
// of an op's inputs. core/ops calls kernels only through this table, never kernels/cpu or
// kernels/cuda directly.
//
// Conventions shared by both tables:
//  * Every pointer is in the memory of the table's device (host memory for cpu, device
//    memory for cuda), including the scalar results (sum_all's value, the cross-entropy's
//    count and bad row, the embedding's bad position): the op reads them back with
//    Tensor::to_vector*() when it needs them on the host (a synchronisation on cuda).
//  * Shape and stride arrays are HOST arrays on both tables (kernel launch parameters).
//  * The cuda table launches on the current device (backend_for selects it) and the legacy
//    default stream; functions return before the kernel has run.
//  * gemm/gemm_batched take the matmul precision as their first argument (core owns it:
//    scion/precision.h; the ops pass matmul_precision()): under bf16 both inputs are rounded
//    to bf16 and accumulated in f32, on either device. AttentionShape carries it as well.
//  * A table is checked complete when it is built (check_backend_complete): a forgotten entry
//    is an error naming it, never a null pointer met at run time.
//
// The kernel types (BinaryOp, UnaryOp, AttentionShape) are the kernels' own
// (kernels/common/kernel_types.h), shared by both devices; only backend_cpu.cpp and
// backend_cuda.cpp know the kernel libraries themselves.
#pragma once
#include <cstddef>
#include <cstdint>
#include <initializer_list>

#include "common/kernel_types.h"
#include "scion/device.h"
#include "scion/dtype.h"
#include "scion/precision.h"

namespace scion {
class Tensor;
}

namespace scion::ops::detail {

using kernels::AttentionShape;  // key_mask: a pointer in the table's device memory
using kernels::BinaryOp;
using kernels::UnaryOp;

struct Backend {
  const char* name;  // "cpu" or "cuda"
  Device::Kind kind;

  // ---- elementwise ----
  void (*binary)(BinaryOp op, const float* a, const int64_t* a_strides, const float* b, const int64_t* b_strides,
                 float* y, const int64_t* shape, int ndim);
  void (*unary)(UnaryOp op, const float* x, float* y, int64_t n, float p0, float p1);
  void (*unary_backward)(UnaryOp op, const float* x, const float* y, const float* gy, float* gx, int64_t n, float p0,
                         float p1);
  void (*dropout)(const float* x, float* y, uint8_t* mask, int64_t n, float p, uint64_t seed);
  void (*masked_scale)(const float* x, const uint8_t* mask, float* y, int64_t n, float scale);

  // ---- copies and conversion ----
  // Strided src (element strides) into contiguous dst, converting dtype.
  void (*strided_copy)(const void* src, DType src_dtype, const int64_t* shape, const int64_t* strides, int ndim,
                       void* dst, DType dst_dtype);
  // Contiguous src into strided dst, same dtype (elem_size bytes per element).
  void (*strided_assign)(void* dst, const int64_t* dst_strides, const void* src, const int64_t* shape, int ndim,
                         size_t elem_size);
  void (*copy)(void* dst, const void* src, size_t bytes);  // within the device
  void (*fill)(void* dst, DType dtype, int64_t n, double value);

  // ---- random (counter-based, the same streams on both devices) ----
  void (*fill_normal)(float* y, int64_t n, uint64_t seed, float mean, float std);
  void (*fill_uniform)(float* y, int64_t n, uint64_t seed, float lo, float hi);
  void (*fill_randint)(int64_t* y, int64_t n, uint64_t seed, int64_t lo, int64_t hi);

  // ---- reductions ----
  void (*reduce_sum)(const float* x, float* y, int64_t outer, int64_t n, int64_t inner);
  void (*reduce_max)(const float* x, float* y, int64_t* argmax, int64_t outer, int64_t n, int64_t inner);
  void (*sum_all)(const float* x, int64_t n, float* out);  // *out = float(f64 sum)
  // *out (may be null) = float(sum of squares), *out_f64 (may be null) = the f64 value.
  void (*sum_squares)(const float* x, int64_t n, float* out, double* out_f64);

  // ---- GEMM (row-major) ----
  void (*gemm)(MatmulPrecision precision, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
               const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);
  void (*gemm_batched)(MatmulPrecision precision, bool ta, bool tb, int64_t batch, int64_t M, int64_t N, int64_t K,
                       float alpha, const float* A, int64_t lda, int64_t stride_a, const float* B, int64_t ldb,
                       int64_t stride_b, float beta, float* C, int64_t ldc, int64_t stride_c);
  // Operands rounded to bf16 once (linear's x, W and gradient, the fused head's weight). A
  // rounded copy holds bf16 bits (2 bytes an element) where the device multiplies bf16, or the
  // rounded values as f32 (4) where the CPU emulates the bf16 GEMM: bf16_operand_bytes() says
  // which, bf16_copy (ops/common.h) allocates accordingly.
  int64_t (*bf16_operand_bytes)();
  void (*pack_bf16_matrix)(const float* src, int64_t rows, int64_t cols, int64_t ld, void* dst);
  void (*gemm_bf16_packed)(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A,
                           int64_t lda, const void* B, int64_t ldb, float beta, float* C, int64_t ldc);
  void (*add_bias_rows)(float* y, const float* bias, int64_t rows, int64_t n);
  void (*sum_rows)(const float* gy, float* gb, int64_t rows, int64_t n);

  // ---- softmax, layernorm, rmsnorm ----
  void (*softmax_rows)(const float* x, float* y, int64_t rows, int64_t n, bool log);
  void (*softmax_rows_backward)(const float* y, const float* gy, float* gx, int64_t rows, int64_t n, bool log);
  void (*layernorm_forward)(const float* x, const float* w, const float* b, float* y, float* mean, float* rstd,
                            int64_t rows, int64_t n, float eps);
  void (*layernorm_backward)(const float* gy, const float* x, const float* w, const float* mean, const float* rstd,
                             float* gx, float* gw, float* gb, int64_t rows, int64_t n);

  // y = x * rstd * w with rstd[r] = 1 / sqrt(mean(x[r]^2) + eps) (Llama's RMSNorm); gw may be null.
  void (*rmsnorm_forward)(const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t n, float eps);
  void (*rmsnorm_backward)(const float* gy, const float* x, const float* w, const float* rstd, float* gx, float* gw,
                           int64_t rows, int64_t n);

  // ---- rotary position embedding ----
  // x, y [rows, H, D] (row r at position r % T), cos/sin [T, D/2]: the pair (x[i], x[i + D/2])
  // of each head turned by the angle at (t, i) (Hugging Face's rotate_half); inverse turns back.
  void (*rotary)(const float* x, const float* cos, const float* sin, float* y, int64_t rows, int64_t T, int64_t H,
                 int64_t D, bool inverse);

  // ---- embedding and indexing ----
  // *bad = first position with an id outside [0, vocab), else -1.
  void (*embedding_forward)(const float* table, int64_t vocab, int64_t dim, const int64_t* ids, int64_t n, float* y,
                            int64_t* bad);
  void (*embedding_backward)(const float* gy, const int64_t* ids, int64_t n, int64_t dim, float* g_table,
                             int64_t vocab);
  // y[o, i, :] = x[o, idx[i], :] over [outer, n, inner] -> [outer, k, inner]; idx checked by the caller.
  void (*index_select)(const float* x, const int64_t* idx, float* y, int64_t outer, int64_t n, int64_t k,
                       int64_t inner);
  // gx[o, idx[i], :] += gy[o, i, :], in i order (deterministic).
  void (*index_add)(const float* gy, const int64_t* idx, float* gx, int64_t outer, int64_t n, int64_t k,
                    int64_t inner);
  // y[e] = x[offsets[e]].
  void (*take)(const float* x, const int64_t* offsets, float* y, int64_t total);
  // gx[offsets[e]] += gy[e]; the index tensor is [lead, len, trail] around the gathered axis and
  // only positions differing along it may collide, so each (lead, trail) sums its len in order.
  void (*take_backward)(const float* gy, const int64_t* offsets, float* gx, int64_t lead, int64_t len,
                        int64_t trail);
  // out = cond ? x : y over a broadcast shape; x or y null means the scalar xv / yv.
  void (*where)(const uint8_t* cond, const int64_t* c_strides, const float* x, const int64_t* x_strides, float xv,
                const float* y, const int64_t* y_strides, float yv, float* out, const int64_t* shape, int ndim);
  // gx (zeroed, [outer, n, inner]) at argmax gets gy ([outer, inner]).
  void (*max_backward)(const float* gy, const int64_t* argmax, float* gx, int64_t outer, int64_t n, int64_t inner);

  // ---- fused attention ----
  void (*attention_forward)(const AttentionShape& s, const float* q, const float* k, const float* v, float* out,
                            float* lse);
  void (*attention_backward)(const AttentionShape& s, const float* q, const float* k, const float* v,
                             const float* out, const float* lse, const float* gout, float* gq, float* gk, float* gv);

  // ---- cross-entropy ----
  void (*cross_entropy_forward)(const float* logits, const int64_t* targets, int64_t rows, int64_t V,
                                int64_t ignore_index, float* loss_rows, float* lse, int64_t* count, int64_t* bad_row);
  void (*cross_entropy_backward)(const float* logits, const int64_t* targets, const float* lse, int64_t rows,
                                 int64_t V, int64_t ignore_index, float scale, float* g);
  // Forward and backward of a chunk in one pass per row (the fused LM head; targets valid):
  // loss_rows and lse; with grad_f32 the logits become scale * (softmax - onehot) in place,
  // with grad_bf16 (compact rows x V, a rounded operand as pack_bf16_matrix writes one) that
  // gradient is (also) written rounded to bf16.
  void (*cross_entropy_rows)(float* logits, const int64_t* targets, int64_t rows, int64_t V, int64_t ignore_index,
                             float scale, float* loss_rows, float* lse, bool grad_f32, void* grad_bf16);
  void (*soft_cross_entropy_forward)(const float* x, const float* t, const uint8_t* mask, int64_t rows, int64_t V,
                                     float T, bool kl, float* loss_rows, float* lse_x, float* lse_t);
  void (*soft_cross_entropy_backward)(const float* x, const float* t, const uint8_t* mask, const float* lse_x,
                                      const float* lse_t, const float* loss_rows, int64_t rows, int64_t V, float T,
                                      bool kl, float scale, float* gx, float* gt);

  // ---- optimizer ----
  void (*adamw)(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2,
                float eps, float weight_decay, float bias_correction1, float bias_correction2, float grad_scale);
  void (*scale_inplace)(float* x, int64_t n, float s);
};

// Throws, naming the table and every entry left null, unless all of b's entries are set. Each
// table runs it when it is built (backend_check.cpp holds the list of entries).
void check_backend_complete(const Backend& b);

const Backend& backend_cpu();
#ifdef SCION_HAVE_CUDA
void select_cuda_device(int index);  // backend_cuda.cpp: cuda::set_device when it changes (per thread)
#endif
// The CUDA table, or null in a build without the CUDA backend.
const Backend* backend_cuda();
// The table for a device (selecting it as the current CUDA device); throws on a device this
// build has no backend for.
const Backend& backend_of(const char* op, Device d);
// The table for an op's inputs: every defined tensor must be on one device. Null entries are
// skipped; an undefined tensor is an error naming its position. Throws, naming the op and both
// devices, when two inputs sit on different devices. With no tensor at all, the cpu table.
const Backend& backend_for(const char* op, std::initializer_list<const Tensor*> ts);

}  // namespace scion::ops::detail
