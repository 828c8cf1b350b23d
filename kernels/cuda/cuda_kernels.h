// CUDA kernels: the twin of cpu/cpu_kernels.h, sharing its types (common/kernel_types.h).
// Same function names and argument meanings, in namespace scion::cuda, over DEVICE pointers,
// each taking the stream to launch on as an opaque `void* stream` (a cudaStream_t; nullptr =
// the legacy default stream) so that core/ never includes CUDA headers. Every function
// launches asynchronously on the current device (the caller selects it with set_device) and
// returns without synchronising, unless its comment says otherwise. Errors at launch throw
// std::runtime_error.
//
// Differences from the CPU signatures, all because a GPU result cannot be returned to the host
// without a synchronisation:
//  * sum_all / sum_squares write their result to a device scalar instead of returning it.
//  * cross_entropy_forward writes the counted-row count and the bad row to device i64s.
//  * embedding_forward writes the first bad position to a device i64 (-1 when all ids are good).
//  * reduce results, lse etc. are device arrays as on the CPU.
//
// Determinism: as on the CPU, no kernel adds floats with atomics; every reduction uses a fixed
// partition that depends only on the problem size (never on the GPU's SM count), so a result
// is bit-identical run to run on one GPU model.
//
// Mixed precision: bf16 tensors are stored as uint16_t (the upper half of an f32, as in
// scion/dtype.h). The *_bf16 variants read and write bf16 activations and compute in f32; master
// weights, optimizer state, losses, log-sum-exps and layernorm statistics stay f32.
#pragma once
#include <cstddef>
#include <cstdint>

#include "common/kernel_types.h"
#include "scion/dtype.h"

namespace scion::cuda {

using kernels::AttentionShape;  // key_mask a DEVICE pointer; grad_tstride and precision not read here
using kernels::BinaryOp;
using kernels::kMaxDims;
using kernels::UnaryOp;

// ---- streams and devices (streams.cu) --------------------------------------------------------
void set_device(int device);
int current_device();
void* stream_create();                     // a non-blocking stream on the current device
void stream_destroy(void* stream);
void stream_synchronize(void* stream);
void* event_create();                      // timing disabled: cheap ordering only
void event_destroy(void* event);
void event_record(void* event, void* stream);
void stream_wait_event(void* stream, void* event);  // later work on `stream` waits for `event`
// Copies between host and device on a stream (host memory should be pinned for overlap).
void copy_async(void* dst, const void* src, size_t bytes, void* stream);
// Throws if an earlier asynchronous kernel failed (reads the sticky error state).
void check_last_error(const char* what);

// ---- elementwise -----------------------------------------------------------------------------
// y[i] = a[ia] op b[ib] over an N-d index with element strides (0 = broadcast). y is contiguous.
// shape/strides are HOST arrays (they travel as kernel parameters).
void binary(BinaryOp op, const float* a, const int64_t* a_strides, const float* b,
            const int64_t* b_strides, float* y, const int64_t* shape, int ndim, void* stream = nullptr);
void binary_bf16(BinaryOp op, const uint16_t* a, const int64_t* a_strides, const uint16_t* b,
                 const int64_t* b_strides, uint16_t* y, const int64_t* shape, int ndim,
                 void* stream = nullptr);
// y = f(x); p0/p1 are the op's scalars (clamp lo/hi, pow exponent, scalar). gelu is the tanh form.
void unary(UnaryOp op, const float* x, float* y, int64_t n, float p0, float p1, void* stream = nullptr);
void unary_bf16(UnaryOp op, const uint16_t* x, uint16_t* y, int64_t n, float p0, float p1,
                void* stream = nullptr);
// gx = gy * f'(x); x or y may be null when the op's derivative does not need it (as on the CPU).
void unary_backward(UnaryOp op, const float* x, const float* y, const float* gy, float* gx,
                    int64_t n, float p0, float p1, void* stream = nullptr);
void unary_backward_bf16(UnaryOp op, const uint16_t* x, const uint16_t* y, const uint16_t* gy,
                         uint16_t* gx, int64_t n, float p0, float p1, void* stream = nullptr);

// Copies an N-d strided view of src (element strides, host arrays) into contiguous dst,
// converting dtype with the CPU's rounding (bf16/f16 round to nearest even).
void strided_copy(const void* src, DType src_dtype, const int64_t* shape, const int64_t* strides,
                  int ndim, void* dst, DType dst_dtype, void* stream = nullptr);
void fill(void* dst, DType dtype, int64_t n, double value, void* stream = nullptr);

// ---- random: bit-identical to the CPU for uniform, randint and dropout masks (same counter
// RNG, scion/random.h). fill_normal uses the device's logf/cosf, which may differ from the
// host's libm by an ulp, so normals match the CPU to ~1e-6 relative, not bit for bit.
void fill_normal(float* y, int64_t n, uint64_t seed, float mean, float std, void* stream = nullptr);
void fill_uniform(float* y, int64_t n, uint64_t seed, float lo, float hi, void* stream = nullptr);
void fill_randint(int64_t* y, int64_t n, uint64_t seed, int64_t lo, int64_t hi, void* stream = nullptr);
void dropout(const float* x, float* y, uint8_t* mask, int64_t n, float p, uint64_t seed,
             void* stream = nullptr);
void dropout_bf16(const uint16_t* x, uint16_t* y, uint8_t* mask, int64_t n, float p, uint64_t seed,
                  void* stream = nullptr);
void masked_scale(const float* x, const uint8_t* mask, float* y, int64_t n, float scale,
                  void* stream = nullptr);
void masked_scale_bf16(const uint16_t* x, const uint8_t* mask, uint16_t* y, int64_t n, float scale,
                       void* stream = nullptr);

// ---- reductions over the middle axis of [outer, n, inner] (f32 in and out) -------------------
void reduce_sum(const float* x, float* y, int64_t outer, int64_t n, int64_t inner, void* stream = nullptr);
// NaN wins (first NaN's index), ties keep the first index, as on the CPU.
void reduce_max(const float* x, float* y, int64_t* argmax, int64_t outer, int64_t n, int64_t inner,
                void* stream = nullptr);
// *out (a device f32) = sum, accumulated in f64 over a fixed partition. out_f64 (optional, device)
// also receives the f64 value.
void sum_all(const float* x, int64_t n, float* out, double* out_f64 = nullptr, void* stream = nullptr);
void sum_squares(const float* x, int64_t n, float* out, double* out_f64 = nullptr, void* stream = nullptr);

// ---- GEMM through cuBLASLt (row-major, like the CPU) ---------------------------------------------
// C[M,N] = alpha * op(A) op(B) + beta * C; leading dims in elements. f32 in/out uses f32
// compute (no TF32 unless set_allow_tf32(true)).
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha,
          const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C,
          int64_t ldc, void* stream = nullptr);
void gemm_batched(bool trans_a, bool trans_b, int64_t batch, int64_t M, int64_t N, int64_t K,
                  float alpha, const float* A, int64_t lda, int64_t stride_a, const float* B,
                  int64_t ldb, int64_t stride_b, float beta, float* C, int64_t ldc, int64_t stride_c,
                  void* stream = nullptr);
void set_allow_tf32(bool on);

// The general form: A/B in f32 or bf16 (both the same), C/D in f32 or bf16, f32 accumulation,
// optional fused epilogue. The bias has N entries (one per output column, i.e. y[r,:] += bias)
// and is f32 when C is f32, else bf16-or-f32 as bias_dtype says.
enum class Epilogue : uint8_t {
  none,
  bias,       // D = alpha op(A)op(B) + beta C + bias
  gelu,       // D = gelu(...)
  gelu_bias,  // D = gelu(... + bias); with aux != null the pre-gelu values go to aux (for backward)
};
struct GemmArgs {
  bool trans_a = false, trans_b = false;
  int64_t M = 0, N = 0, K = 0;
  int64_t batch = 1;
  float alpha = 1.f, beta = 0.f;
  DType ab_dtype = DType::f32;  // A and B
  DType c_dtype = DType::f32;   // C and D
  const void* A = nullptr;
  int64_t lda = 0, stride_a = 0;
  const void* B = nullptr;
  int64_t ldb = 0, stride_b = 0;
  void* C = nullptr;  // read when beta != 0, written always
  int64_t ldc = 0, stride_c = 0;
  Epilogue epilogue = Epilogue::none;
  const void* bias = nullptr;
  DType bias_dtype = DType::f32;
  void* aux = nullptr;  // gelu_bias only: pre-activation, same dtype/layout as C, ld = aux_ld
  int64_t aux_ld = 0, aux_stride = 0;
};
void gemm_ex(const GemmArgs& args, void* stream = nullptr);

// y[r, :] += bias (rows x n)
void add_bias_rows(float* y, const float* bias, int64_t rows, int64_t n, void* stream = nullptr);
void add_bias_rows_bf16(uint16_t* y, const float* bias, int64_t rows, int64_t n, void* stream = nullptr);
// gb[j] = sum_r gy[r, j], deterministic (fixed row chunks, chunk sums added in order)
void sum_rows(const float* gy, float* gb, int64_t rows, int64_t n, void* stream = nullptr);
void sum_rows_bf16(const uint16_t* gy, float* gb, int64_t rows, int64_t n, void* stream = nullptr);

// ---- softmax family over the last axis (rows x n) ------------------------------------------------
void softmax_rows(const float* x, float* y, int64_t rows, int64_t n, bool log, void* stream = nullptr);
void softmax_rows_bf16(const uint16_t* x, uint16_t* y, int64_t rows, int64_t n, bool log,
                       void* stream = nullptr);
void softmax_rows_backward(const float* y, const float* gy, float* gx, int64_t rows, int64_t n,
                           bool log, void* stream = nullptr);
void softmax_rows_backward_bf16(const uint16_t* y, const uint16_t* gy, uint16_t* gx, int64_t rows,
                                int64_t n, bool log, void* stream = nullptr);

// ---- layernorm over the last axis (w, b, mean, rstd always f32) ----------------------------------
void layernorm_forward(const float* x, const float* w, const float* b, float* y, float* mean,
                       float* rstd, int64_t rows, int64_t n, float eps, void* stream = nullptr);
void layernorm_forward_bf16(const uint16_t* x, const float* w, const float* b, uint16_t* y,
                            float* mean, float* rstd, int64_t rows, int64_t n, float eps,
                            void* stream = nullptr);
// gw/gb may be null; they are overwritten (not accumulated), deterministic.
void layernorm_backward(const float* gy, const float* x, const float* w, const float* mean,
                        const float* rstd, float* gx, float* gw, float* gb, int64_t rows, int64_t n,
                        void* stream = nullptr);
void layernorm_backward_bf16(const uint16_t* gy, const uint16_t* x, const float* w,
                             const float* mean, const float* rstd, uint16_t* gx, float* gw,
                             float* gb, int64_t rows, int64_t n, void* stream = nullptr);

// ---- RMS normalisation over the last axis (rmsnorm.cu; f32, Llama's RMSNorm) ---------------------
void rmsnorm_forward(const float* x, const float* w, float* y, float* rstd, int64_t rows, int64_t n,
                     float eps, void* stream = nullptr);
// gw may be null; it is overwritten (not accumulated), deterministic.
void rmsnorm_backward(const float* gy, const float* x, const float* w, const float* rstd, float* gx,
                      float* gw, int64_t rows, int64_t n, void* stream = nullptr);

// ---- rotary position embedding (rotary.cu; f32): cpu/cpu_kernels.h's rotary -------------------
void rotary(const float* x, const float* cos, const float* sin, float* y, int64_t rows, int64_t T,
            int64_t H, int64_t D, bool inverse, void* stream = nullptr);

// ---- embedding --------------------------------------------------------------------------------------
// *bad (device i64) = the first position whose id is outside [0, vocab), else -1; rows with a
// bad id are written as zeros.
void embedding_forward(const float* table, int64_t vocab, int64_t dim, const int64_t* ids,
                       int64_t n, float* y, int64_t* bad, void* stream = nullptr);
void embedding_forward_bf16(const float* table, int64_t vocab, int64_t dim, const int64_t* ids,
                            int64_t n, uint16_t* y, int64_t* bad, void* stream = nullptr);
// g_table (vocab x dim, f32) += scatter of gy rows by ids. Deterministic: positions are sorted by
// id (stable radix sort, so equal ids stay in position order) and each id's rows are summed in
// that order by one thread per column. ids must be valid.
void embedding_backward(const float* gy, const int64_t* ids, int64_t n, int64_t dim, float* g_table,
                        int64_t vocab, void* stream = nullptr);
void embedding_backward_bf16(const uint16_t* gy, const int64_t* ids, int64_t n, int64_t dim,
                             float* g_table, int64_t vocab, void* stream = nullptr);

// ---- indexing (indexing.cu; twins of cpu/indexing.cpp). Indices are checked by the caller;
// shape/stride arrays are HOST arrays, data pointers are device pointers. No atomics. ----
void strided_assign(void* dst, const int64_t* dst_strides, const void* src, const int64_t* shape, int ndim,
                    size_t elem_size, void* stream = nullptr);
void index_select(const float* x, const int64_t* idx, float* y, int64_t outer, int64_t n, int64_t k, int64_t inner,
                  void* stream = nullptr);
void index_add(const float* gy, const int64_t* idx, float* gx, int64_t outer, int64_t n, int64_t k, int64_t inner,
               void* stream = nullptr);
void take(const float* x, const int64_t* offsets, float* y, int64_t total, void* stream = nullptr);
void take_backward(const float* gy, const int64_t* offsets, float* gx, int64_t lead, int64_t len, int64_t trail,
                   void* stream = nullptr);
void where(const uint8_t* cond, const int64_t* c_strides, const float* x, const int64_t* x_strides, float xv,
           const float* y, const int64_t* y_strides, float yv, float* out, const int64_t* shape, int ndim,
           void* stream = nullptr);
void max_backward(const float* gy, const int64_t* argmax, float* gx, int64_t outer, int64_t n, int64_t inner,
                  void* stream = nullptr);

// ---- fused attention (flash style: no T x T matrix in device memory) -----------------------------
// AttentionShape (common/kernel_types.h) gives the q/k/v layout; D <= 128. The GEMMs are f32
// (FFMA) whatever s.precision says.
// out is contiguous [B, T, H*D]; lse is [B, H, T] f32 (+inf for a row whose keys are all hidden,
// whose output is then zero, as on the CPU).
void attention_forward(const AttentionShape& s, const float* q, const float* k, const float* v,
                       float* out, float* lse, void* stream = nullptr);
void attention_forward_bf16(const AttentionShape& s, const uint16_t* q, const uint16_t* k,
                            const uint16_t* v, uint16_t* out, float* lse, void* stream = nullptr);
// gq/gk/gv are contiguous [B, T, H*D], overwritten. Deterministic: dK/dV are accumulated per key
// tile and dQ per query tile by separate kernels (no atomics).
void attention_backward(const AttentionShape& s, const float* q, const float* k, const float* v,
                        const float* out, const float* lse, const float* gout, float* gq,
                        float* gk, float* gv, void* stream = nullptr);
void attention_backward_bf16(const AttentionShape& s, const uint16_t* q, const uint16_t* k,
                             const uint16_t* v, const uint16_t* out, const float* lse,
                             const uint16_t* gout, uint16_t* gq, uint16_t* gk, uint16_t* gv,
                             void* stream = nullptr);

// ---- fused softmax cross-entropy (rows x V); losses and lse always f32 --------------------------------
// loss_rows[r] = lse_r - x[r, t_r] (0 where ignored). *count (device i64) = counted rows,
// *bad_row (device i64) = the first row with a target outside [0, V) that is not ignore_index,
// else -1 (such rows get loss 0).
void cross_entropy_forward(const float* logits, const int64_t* targets, int64_t rows, int64_t V,
                           int64_t ignore_index, float* loss_rows, float* lse, int64_t* count,
                           int64_t* bad_row, void* stream = nullptr);
void cross_entropy_forward_bf16(const uint16_t* logits, const int64_t* targets, int64_t rows,
                                int64_t V, int64_t ignore_index, float* loss_rows, float* lse,
                                int64_t* count, int64_t* bad_row, void* stream = nullptr);
// g[r, :] = scale * (softmax(x_r) - onehot(t_r)); zero for ignored rows. g may alias logits
// (each element is read before it is written by the same thread).
void cross_entropy_backward(const float* logits, const int64_t* targets, const float* lse,
                            int64_t rows, int64_t V, int64_t ignore_index, float scale, float* g,
                            void* stream = nullptr);
void cross_entropy_backward_bf16(const uint16_t* logits, const int64_t* targets, const float* lse,
                                 int64_t rows, int64_t V, int64_t ignore_index, float scale,
                                 uint16_t* g, void* stream = nullptr);
// Forward and backward in one launch (training, where the gradient is always needed): one read
// of the logits for max + log-sum-exp, one more to write the gradient, which may overwrite the
// logits in place. scale is the host-known loss scale (1/count for a mean).
void cross_entropy_forward_backward(const float* logits, const int64_t* targets, int64_t rows,
                                    int64_t V, int64_t ignore_index, float scale, float* loss_rows,
                                    float* lse, float* g, void* stream = nullptr);
void cross_entropy_forward_backward_bf16(const uint16_t* logits, const int64_t* targets,
                                         int64_t rows, int64_t V, int64_t ignore_index, float scale,
                                         float* loss_rows, float* lse, uint16_t* g,
                                         void* stream = nullptr);
// Soft targets at temperature T (f32): p = softmax(t/T), log q = log_softmax(x/T).
// kl=false: row value -sum p log q; kl=true: sum p (log p - log q). Rows with mask 0 give 0.
void soft_cross_entropy_forward(const float* x, const float* t, const uint8_t* mask, int64_t rows,
                                int64_t V, float T, bool kl, float* loss_rows, float* lse_x,
                                float* lse_t, void* stream = nullptr);
void soft_cross_entropy_backward(const float* x, const float* t, const uint8_t* mask,
                                 const float* lse_x, const float* lse_t, const float* loss_rows,
                                 int64_t rows, int64_t V, float T, bool kl, float scale, float* gx,
                                 float* gt, void* stream = nullptr);

// ---- optimizer -------------------------------------------------------------------------------------
void adamw(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1,
           float beta2, float eps, float weight_decay, float bias_correction1,
           float bias_correction2, float grad_scale = 1.f, void* stream = nullptr);
// Multi-tensor AdamW: one launch per group of up to kAdamTensorsPerLaunch tensors. Each entry
// has its own weight decay (no-decay groups) and an optional bf16 copy of the updated weight
// (the compute weights of mixed precision, written in the same pass). grad_scale (device f32,
// optional) multiplies every gradient first, e.g. a clip factor computed on the device, so
// clipping needs no host round trip; host_grad_scale (a clip factor known on the host) too.
struct AdamTensor {
  float* p;
  const float* g;
  float* m;
  float* v;
  uint16_t* p_bf16;  // may be null
  int64_t n;
  float weight_decay;
};
constexpr int kAdamTensorsPerLaunch = 24;
void adamw_multi(const AdamTensor* tensors, int count, float lr, float beta1, float beta2,
                 float eps, float bias_correction1, float bias_correction2,
                 const float* grad_scale = nullptr, void* stream = nullptr, float host_grad_scale = 1.f);
// *out (device) = min(1, max_norm / (sqrt(total) + 1e-6)) with total = sum_sq[0] + ... +
// sum_sq[count-1] added in order (e.g. one sum_squares f64 result per parameter): the global
// gradient-norm clip factor for adamw_multi, without a host round trip.
void clip_factor(const double* sum_sq, int count, float max_norm, float* out, void* stream = nullptr);
void scale_inplace(float* x, int64_t n, float s, void* stream = nullptr);

}  // namespace scion::cuda
