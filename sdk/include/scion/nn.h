// Neural-network building blocks with hierarchical, Hugging-Face-style parameter names.
//
// A Module owns parameters and child modules under names; parameters() walks them in
// registration order and yields dotted names ("h.0.attn.c_attn.weight"), so a model's
// state dict matches the names its Hugging Face twin uses.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "scion/ops.h"
#include "scion/tensor.h"

namespace scion::nn {

using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module {
 public:
  virtual ~Module() = default;
  Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  NamedTensors named_parameters(const std::string& prefix = "") const;
  // Buffers: saved state that is not a parameter (structural gates). Only defined ones are
  // listed; they are never trained by the optimizer (a gate that requires grad belongs to the
  // plugin that made it).
  NamedTensors named_buffers(const std::string& prefix = "") const;
  std::vector<Tensor> parameters() const;
  int64_t parameter_count() const;
  // Parameters, then defined buffers. Copies of nothing: the tensors are the module's own.
  NamedTensors state_dict() const;
  // Copies values into the parameters by name and sets buffers (any shape; a buffer absent
  // from `state` is cleared when strict). strict: every parameter must be present and no
  // unknown key allowed. Shape mismatches of parameters always throw, naming the key and
  // both shapes.
  void load_state_dict(const NamedTensors& state, bool strict = true);
  void zero_grad();
  // Moves every parameter and buffer to `device` (cpu, cuda:N), keeping requires_grad and moving
  // a gradient held; a no-op for tensors already there. Parameters are rebound in their slots,
  // so call it before handing parameters() to an optimizer (or re-collect them after).
  void to(Device device);
  // Replaces a parameter tensor, shape included (growth ops use this). Throws on unknown names.
  void replace_parameter(const std::string& dotted_name, const Tensor& value);
  Tensor parameter(const std::string& dotted_name) const;
  // Slots let code rebind parameters; names are dotted as in named_parameters().
  std::vector<std::pair<std::string, Tensor*>> named_parameter_slots(const std::string& prefix = "");
  std::vector<std::pair<std::string, Tensor*>> named_buffer_slots(const std::string& prefix = "");
  void set_training(bool training);
  bool training() const { return training_; }

 protected:
  // The module keeps a pointer to `slot` (a member of the derived class), so a module is
  // never copied or moved. The value becomes a leaf that requires grad.
  void register_parameter(const std::string& name, Tensor* slot, Tensor value);
  // A buffer slot (may stay undefined).
  void register_buffer(const std::string& name, Tensor* slot);
  // Child names may contain dots ("attention.self.query") to reproduce Hugging Face paths
  // without empty intermediate modules.
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    entries_.push_back({name, nullptr, m});
    return m;
  }
  bool training_ = true;

 private:
  // Parameters and children in registration order (which is the state-dict order).
  struct Entry {
    std::string name;
    Tensor* param;                  // set for a parameter
    std::shared_ptr<Module> child;  // set for a child module
    bool buffer = false;            // `param` is a buffer slot
  };
  std::vector<Entry> entries_;
};

struct InitConfig {
  uint64_t seed = 0;
  float std = 0.02f;
};

// y = x W + b. `conv1d_layout` stores W as [in, out] (GPT-2's Conv1D), otherwise [out, in].
class Linear : public Module {
 public:
  Linear(int64_t in, int64_t out, bool bias, bool conv1d_layout, InitConfig init);
  Tensor forward(const Tensor& x) const;
  Tensor weight, bias;
  int64_t in_features, out_features;
  bool conv1d_layout;
};

// Which normalisation a transformer uses.
enum class NormKind : uint8_t {
  layer_norm,  // (x - mean) / sqrt(var + eps) * weight + bias (GPT-2, BERT)
  rms_norm,    // x / sqrt(mean(x²) + eps) * weight, no bias (Llama: LlamaRMSNorm)
};

class Norm : public Module {
 public:
  explicit Norm(int64_t dim, float eps = 1e-5f, NormKind kind = NormKind::layer_norm);
  Tensor forward(const Tensor& x) const;
  NormKind kind;
  Tensor weight, bias;  // bias only for layer_norm
  float eps;
  // Hidden-dimension gate, MSG's (buffer "gate"): when defined (f32 [dim]), statistics are
  // weighted by it (over the kept dimensions) and the output is multiplied by it
  // (ops::layernorm_masked; RMSNorm: mean(x²) weighted the same way).
  Tensor gate;
  // Hidden-dimension gate, CoFi's (buffer "gate.kept"): when defined (f32 [dim]), statistics
  // run unweighted over the dimensions where it is not 0 and the output is multiplied by it
  // (ops::layernorm_kept; RMSNorm: mean(x²) over those dimensions); the model gates its
  // residual stream with it too. At most one of the two gates is set.
  Tensor kept_gate;
};

class Embedding : public Module {
 public:
  Embedding(int64_t count, int64_t dim, InitConfig init);
  Tensor forward(const Tensor& ids) const;
  Tensor weight;
};

// ---- one transformer description ---------------------------------------------------------
// GPT-2, BERT and the Llama family (Llama 2/3, Qwen2, Mistral, SmolLM) are instances of one
// transformer: they differ in the choices below and in the Hugging Face names of their tensors,
// which `transformer_names()` holds for every family in one table (core/nn/transformer_names.cpp).

enum class MlpKind : uint8_t {
  gelu,    // down(gelu_tanh(up(x)))                 GPT-2 (gelu_new), BERT here
  swiglu,  // down(silu(gate(x)) * up(x))             Llama
};
enum class PositionKind : uint8_t {
  learned,  // a position embedding table added to the token embeddings (GPT-2, BERT)
  rotary,   // q and k rotated per position, Hugging Face's half-rotation form (Llama)
};

// The Hugging Face names of one family. Block names are relative to `block_prefix` + index;
// the attention's and the MLP's projections are relative to their module (`attention`, `mlp`,
// which may be "" when the family has no such module level).
struct TransformerNames {
  std::string family;                          // "gpt2" | "bert" | "llama"
  std::string embed, positions, final_norm, head, block_prefix;
  std::string attn_norm, ffn_norm;             // the norms of the two sublayers
  std::string attention, qkv, q, k, v, o;      // qkv: a fused q|k|v projection, or "" (separate q, k, v)
  std::string mlp, up, gate, down;             // gate: "" unless the MLP is gated (SwiGLU)
  bool conv1d = false;                         // weights stored [in, out] (GPT-2's Conv1D)
};
// Throws naming the known families for another name.
const TransformerNames& transformer_names(const std::string& family);

// What a block is: the family's choices, resolved for one layer's sizes.
struct BlockConfig {
  std::string family = "gpt2";  // names (transformer_names) and init rules
  int64_t width = 256;
  int64_t heads = 4;       // query heads; 0: no attention sublayer (pruned away)
  int64_t kv_heads = 0;    // key/value heads (GQA, MQA); 0: as many as query heads
  // Ragged groups (a pruned grouped-query layer): kv_map[h] is the key/value head query head h
  // reads. Empty: kv head j serves query heads j*g .. j*g+g-1 (g = heads / kv_heads).
  std::vector<int64_t> kv_map;
  int64_t head_size = 0;   // 0: width / heads
  int64_t ffn = 1024;      // usually 4 * width; 0: no FFN sublayer
  int64_t head_dim() const { return head_size > 0 ? head_size : width / heads; }
  int64_t kv_head_count() const { return kv_heads > 0 ? kv_heads : heads; }
  NormKind norm = NormKind::layer_norm;
  MlpKind mlp = MlpKind::gelu;
  bool pre_norm = true;    // pre-LN (GPT-2, Llama) or post-LN (BERT)
  bool causal = true;
  bool rotary = false;     // rotate q and k (the caller passes the tables)
  bool qkv_bias = true, o_bias = true, mlp_bias = true;  // per projection (Qwen2: q/k/v only)
  float dropout = 0.0f;
  float ln_eps = 1e-5f;
  InitConfig init;
  int64_t layers_for_init = 1;  // GPT-2 scales residual projections by 1/sqrt(2*layers)
  // The family's description with its usual choices (biases, norm, MLP, positions, order).
  static BlockConfig of_family(const std::string& family);
};

// What a block's forward pass reads besides its input, and what it may hand back.
struct BlockInputs {
  Tensor key_padding_mask;                 // u8 [B, T] or undefined
  uint64_t dropout_seed = 0;
  const ops::RopeTables* rope = nullptr;   // [T, head_dim/2] tables when the block is rotary
  Tensor* ffn_input = nullptr;             // receives the FFN sublayer's input (TRIME's keys)
};

class SelfAttention : public Module {
 public:
  explicit SelfAttention(const BlockConfig& cfg);
  // x [B, T, C] -> [B, T, C]; attention-output dropout when cfg.dropout > 0 and training.
  Tensor forward(const Tensor& x, const BlockInputs& in) const;
  BlockConfig cfg;
  // Head gate (buffer "gate.head"): when defined, head h's output is scaled by
  // head_gate[h] (f32 [heads]) before the output projection.
  Tensor head_gate;
  std::shared_ptr<Linear> qkv;       // fused q|k|v (GPT-2's c_attn), or null
  std::shared_ptr<Linear> q, k, v;   // separate projections (BERT, Llama), or null
  std::shared_ptr<Linear> o;         // the output projection
};

class Mlp : public Module {
 public:
  explicit Mlp(const BlockConfig& cfg);
  // gelu: down(gelu(up(x))); swiglu: down(silu(gate(x)) * up(x)). No residual, no norm.
  Tensor forward(const Tensor& x) const;
  BlockConfig cfg;
  Tensor unit_gate;  // FFN-unit gate (buffer "gate.unit"): f32 [ffn] scaling each unit after the activation
  std::shared_ptr<Linear> up, gate, down;  // gate only for swiglu
};

class TransformerBlock : public Module {
 public:
  explicit TransformerBlock(const BlockConfig& cfg);
  Tensor forward(const Tensor& x, const BlockInputs& in = {}) const;
  BlockConfig cfg;
  // Layer gate (buffer "gate.layer", f32 [1]): the block becomes an identity at gate 0 and
  // itself at 1. Pre-norm (GPT, Llama): the block adds gate * its attention and MLP outputs to
  // the residual stream. Post-norm (BERT), where the norms act on the residual stream itself:
  // y = gate * block(x) + (1 - gate) * x, as in the MSG reference code.
  Tensor layer_gate;
  // Sublayer gates (buffers "gate.attention", "gate.ffn", f32 [1]): scale the attention and
  // the FFN output before the residual add (CoFi's coarse masks).
  Tensor attention_gate, ffn_gate;
  // The norms of the attention and the FFN sublayer (gpt2: ln_1/ln_2; bert: attention.output.
  // LayerNorm / output.LayerNorm; llama: input_layernorm / post_attention_layernorm). A removed
  // sublayer (heads or ffn 0) has neither its module nor its norm (null).
  std::shared_ptr<Norm> ln_1, ln_2;
  std::shared_ptr<SelfAttention> attn;
  std::shared_ptr<Mlp> mlp;
};

}  // namespace scion::nn
