// The tensor operations. Each checks its inputs (shape, dtype, device) and throws
// scion::Error naming the op and what it got; each records its backward on the autograd
// tape when gradients are enabled. CPU kernels compute float ops in f32; integer index
// tensors are i64 (i32 is accepted where noted).
#pragma once
#include <cstdint>
#include <optional>
#include <vector>

#include "scion/autograd.h"
#include "scion/tensor.h"

namespace scion::ops {

// ---- elementwise with broadcasting (NumPy rules) -----------------------------------
Tensor add(const Tensor& a, const Tensor& b);
// acc += b in place (same shape, acc contiguous; b may be strided). Never recorded: for
// accumulating gradients and other buffers outside autograd.
void add_inplace(Tensor& acc, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
// ---- with a scalar ------------------------------------------------------------------
Tensor add_scalar(const Tensor& a, float s);
Tensor mul_scalar(const Tensor& a, float s);
Tensor pow_scalar(const Tensor& a, float p);
Tensor neg(const Tensor& a);
// ---- unary ---------------------------------------------------------------------------
Tensor exp(const Tensor& a);
Tensor log(const Tensor& a);
Tensor tanh(const Tensor& a);
Tensor sqrt(const Tensor& a);
Tensor rsqrt(const Tensor& a);
Tensor relu(const Tensor& a);
Tensor gelu(const Tensor& a);  // tanh approximation, as GPT-2 and BERT use
// SiLU (swish): x * sigmoid(x), Llama's MLP activation. (SDK 7.2)
Tensor silu(const Tensor& a);
// SwiGLU, Llama's gated MLP: silu(gate) * up (same shapes, or broadcasting as mul does),
// composed from silu and mul. (SDK 7.2)
Tensor swiglu(const Tensor& gate, const Tensor& up);
Tensor clamp(const Tensor& a, float lo, float hi);
// ---- reductions (deterministic: fixed order whatever the thread count) ----------------
Tensor sum(const Tensor& a, const std::vector<int64_t>& axes, bool keepdim = false);
Tensor mean(const Tensor& a, const std::vector<int64_t>& axes, bool keepdim = false);
Tensor max(const Tensor& a, int64_t axis, bool keepdim = false);  // grad to the first max
Tensor sum_all(const Tensor& a);
Tensor mean_all(const Tensor& a);
// Sums `a` down to `shape` (the reverse of broadcasting).
Tensor sum_to(const Tensor& a, const Shape& shape);
// ---- matrix products (BLAS) --------------------------------------------------------------
// a [.., M, K] (or [.., K, M] if trans_a) times b [K, N] (or [N, K]); b may be 2-D and shared
// across a's leading dims, or batched with the same leading dims as a.
Tensor matmul(const Tensor& a, const Tensor& b, bool trans_a = false, bool trans_b = false);
// x [.., in] · W + bias. `w_in_out` chooses W's layout: [in, out] (GPT-2 Conv1D) when true,
// [out, in] (nn.Linear) when false. bias may be undefined.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias, bool w_in_out);
// ---- normalisation and activations --------------------------------------------------
Tensor softmax(const Tensor& a, int64_t axis = -1);
Tensor log_softmax(const Tensor& a, int64_t axis = -1);
Tensor layernorm(const Tensor& x, const Tensor& weight, const Tensor& bias, float eps = 1e-5f);
// Llama's RMSNorm (Hugging Face's LlamaRMSNorm): y = x / sqrt(mean(x², last axis) + eps) * weight,
// weight [n] for x [.., n], computed in f32. Gradients to x and weight. (SDK 7.2)
Tensor rms_norm(const Tensor& x, const Tensor& weight, float eps = 1e-6f);
// LayerNorm whose statistics weight each feature by mask [n] (values in [0, 1], sum > 0):
// mean = Σ m·x / Σ m, var = Σ m·(x − mean)² / Σ m, and the output is multiplied by the mask.
// Features at mask 0 neither shift the statistics nor leave a trace in the output, so
// MSG's hidden-width growth is exact at mask 0 (Yao et al., ICLR 2024). Composite ops: it
// runs only while a growth mask ramps up.
Tensor layernorm_masked(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& mask,
                        float eps = 1e-5f);
// CoFi's LayerNorm (CoFiLayerNorm, Xia et al., ACL 2022): the statistics run unweighted over
// the kept features (mask ≠ 0) only, the output is multiplied by the mask [n] (sum > 0). The
// model gates the input itself (its residual stream is mask ⊙ ...). Which features are kept
// is a discrete choice; a mask that requires grad gets its gradient through the output.
Tensor layernorm_kept(const Tensor& x, const Tensor& weight, const Tensor& bias, const Tensor& mask,
                      float eps = 1e-5f);
// ---- embeddings and indexing -------------------------------------------------------------
Tensor embedding(const Tensor& weight, const Tensor& ids);  // ids i64/i32 any shape -> [.., D]
Tensor index_select(const Tensor& a, int64_t axis, const Tensor& index);
Tensor gather(const Tensor& a, int64_t axis, const Tensor& index);  // index same rank as a
Tensor concat(const std::vector<Tensor>& parts, int64_t axis);
std::vector<Tensor> split(const Tensor& a, const std::vector<int64_t>& sizes, int64_t axis);
Tensor masked_fill(const Tensor& a, const Tensor& mask, float value);  // mask u8, broadcast
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);   // cond u8, broadcast
// ---- regularisation ------------------------------------------------------------------
// Zeroes each element with probability p and scales the rest by 1/(1-p). The mask of
// element i depends only on (seed, i). p == 0 returns the input unchanged.
Tensor dropout(const Tensor& a, float p, uint64_t seed);
// ---- attention ------------------------------------------------------------------------
// q, k, v: [B, T, H*D] (rows may be strided, e.g. narrow() views of a fused qkv tensor).
// Multi-head scaled dot-product attention with `heads` heads; causal masks the future;
// key_padding_mask (u8 [B, T], 1 = real token, 0 = padding) hides padded keys.
// The T x T scores are never kept: backward recomputes them from a saved log-sum-exp.
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads, bool causal,
                 const Tensor& key_padding_mask = Tensor());
// The same on a packed qkv [B, T, 3·H·D] (q, k, v its thirds along the last axis, GPT-2's
// c_attn output), with one gradient [B, T, 3·H·D] written in place of three: attention on
// narrow() views would give each view a full-size zero gradient and add the three.
Tensor attention_packed(const Tensor& qkv, int64_t heads, bool causal, const Tensor& key_padding_mask = Tensor());
// ---- rotary position embedding (Llama; SDK 7.2) ---------------------------------------------
// Llama 3's rope_scaling (rope_type "llama3" in a Hugging Face config).
struct Llama3RopeScaling {
  double factor = 8.0, low_freq_factor = 1.0, high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};
// The head_dim/2 inverse frequencies theta^(-2i/head_dim), rescaled by Llama 3's rule when
// llama3 is given (transformers' rope_type "llama3"), computed in double and rounded to f32.
std::vector<float> rope_inv_freq(int64_t head_dim, double theta,
                                 const std::optional<Llama3RopeScaling>& llama3 = std::nullopt);
// cos and sin of the angles (offset + t) * inv_freq[i] for t in [0, positions): two
// [positions, head_dim/2] tables (the halves Hugging Face's cos/sin [.., head_dim] repeat).
struct RopeTables {
  Tensor cos, sin;
};
RopeTables rope_tables(int64_t head_dim, double theta, int64_t positions, int64_t offset = 0,
                       const std::optional<Llama3RopeScaling>& llama3 = std::nullopt,
                       Device device = Device::cpu());
// x [.., T, H, D] (attention's [B, T, H*D] viewed per head) turned by rotary position embedding
// in Hugging Face's convention: out = x * cos + rotate_half(x) * sin, rotate_half(x) =
// cat(-x[.., D/2:], x[.., :D/2]), with cos/sin [T, D/2] (rope_tables; row t for position t of x's
// T axis). Gradient to x only (the rotation by the opposite angle); cos and sin are constants.
Tensor rotary(const Tensor& x, const Tensor& cos, const Tensor& sin);
// ---- attention with grouped key/value heads (GQA, MQA: Llama; SDK 7.2) ------------------------
// x [B, T, kv_heads*D] -> [B, T, kv_heads*groups*D], each head repeated `groups` times in place
// (Hugging Face's repeat_kv: kv head j serves query heads j*groups .. j*groups + groups - 1). The
// gradient of a kv head is the sum over its group.
Tensor repeat_kv(const Tensor& x, int64_t kv_heads, int64_t groups);
// attention() with q [B, T, heads*D] and k, v [B, T, kv_heads*D], kv_heads dividing heads
// (kv_heads == heads: multi-head, 1: multi-query): the fused attention on repeat_kv(k), repeat_kv(v),
// which are materialised ([B, T, heads*D] each) for the step.
Tensor attention_grouped(const Tensor& q, const Tensor& k, const Tensor& v, int64_t heads, int64_t kv_heads,
                         bool causal, const Tensor& key_padding_mask = Tensor());
// Ragged groups (a pruned grouped-query layer, SDK 10): query head h reads key/value head
// kv_of_head[h] (heads = kv_of_head.size(), kv_heads = k's width / the query's head size, every
// entry in [0, kv_heads)). The same fused attention on k and v gathered per query head; the
// uniform overloads above are this with kv_of_head[h] = h / groups.
Tensor repeat_kv(const Tensor& x, int64_t kv_heads, const std::vector<int64_t>& kv_of_head);
Tensor attention_grouped(const Tensor& q, const Tensor& k, const Tensor& v, const std::vector<int64_t>& kv_of_head,
                         bool causal, const Tensor& key_padding_mask = Tensor());
// ---- losses (mean over counted rows; fused softmax, probabilities never stored) -----------
// logits [N, V] (or [.., V]), targets i64 [N] (or [..]); rows whose target is ignore_index
// do not count.
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100);
// The LM head and its cross-entropy in one op: the mean over counted rows of
// CE(x · Wᵀ + bias, targets), x [.., C], W [V, C], bias [V] (may be undefined), targets i64
// [..]. The [rows, V] logits are never stored: rows go through in chunks of `chunk_rows`
// (0 = at least 256 rows, more while a chunk's logits stay under 32 MB), and the gradients of x, W and bias
// are made in the same pass. Equal to cross_entropy(linear(x, W, bias), targets): the loss
// and x's gradient to f32 rounding of the same arithmetic, W's and bias's summed by chunks.
Tensor linear_cross_entropy(const Tensor& x, const Tensor& w, const Tensor& bias, const Tensor& targets,
                            int64_t ignore_index = -100, int64_t chunk_rows = 0);
// Soft targets: -sum_v softmax(target_logits/T)_v * log_softmax(logits/T)_v, mean over rows
// with row_mask (u8 [N], may be undefined = all rows). Gradients flow to both logits.
Tensor soft_cross_entropy(const Tensor& logits, const Tensor& target_logits, float temperature,
                          const Tensor& row_mask = Tensor());
// KL(softmax(target_logits/T) || softmax(logits/T)), mean over masked rows.
Tensor kl_div(const Tensor& logits, const Tensor& target_logits, float temperature,
              const Tensor& row_mask = Tensor());
Tensor mse(const Tensor& a, const Tensor& b);  // mean squared error
// ---- optimizer helpers (in place, never recorded) -----------------------------------------
struct AdamWConfig {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.0f;
  float grad_scale = 1.f;  // each gradient is multiplied by this first (a clip factor, SDK 11)
};
// One AdamW update at (1-based) step `step` with decoupled weight decay, on g = grad_scale · grad:
// p -= lr * (mhat / (sqrt(vhat) + eps) + wd * p).
void adamw_step(Tensor& param, const Tensor& grad, Tensor& m, Tensor& v, int64_t step,
                const AdamWConfig& cfg);
// Global L2 norm over all tensors (deterministic).
float global_norm(const std::vector<Tensor>& tensors);
// Scales gradients so their global norm is at most max_norm; returns the norm before.
float clip_grad_norm(const std::vector<Tensor>& grads, float max_norm);
// The factor clip_grad_norm scales by at this norm: max_norm / (norm + 1e-6) above max_norm,
// else 1 (an optimizer given it as a gradient scale updates as if the gradients were clipped).
float clip_factor(float norm, float max_norm);

}  // namespace scion::ops

namespace scion {
inline Tensor operator+(const Tensor& a, const Tensor& b) { return ops::add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return ops::sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return ops::mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return ops::div(a, b); }
inline Tensor operator*(const Tensor& a, float s) { return ops::mul_scalar(a, s); }
inline Tensor operator+(const Tensor& a, float s) { return ops::add_scalar(a, s); }
inline Tensor operator-(const Tensor& a) { return ops::neg(a); }
}  // namespace scion
