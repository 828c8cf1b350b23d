// Model surgery: what a transformer model plugin tells and lets methods do to its structure,
// without the method knowing the concrete model (docs/surgery.md).
//
// A model node that is a transformer implements `TransformerModel` (model.gpt and model.bert
// do). Growth (Net2Net, bert2BERT, MSG), ELLE's expansion and pruning (CoFi) are op or loss
// plugins that reach a model only through it:
//
//  * architecture(): layers, width, head size and heads (and key/value heads) per layer, FFN units per layer
//    (0 heads or 0 FFN units: that sublayer is removed), vocabulary, context, pre-/post-LN,
//    tied head;
//  * layout(param): for every parameter, its layer and what each axis indexes (hidden units,
//    heads, GPT's fused q|k|v heads, FFN units) and whether the axis is one the tensor reads
//    from (an in-axis) or writes to (an out-axis). With it a method maps any parameter of
//    any such model by unit index maps;
//  * rebuild(arch, params): the model becomes `arch` with exactly these parameters (sizes
//    may differ per layer); initial_parameters(arch, seed) gives a fresh initialisation;
//  * structural gates: per-structure multipliers applied in the forward pass (the layer, the
//    attention sublayer, each head, the FFN sublayer, each FFN unit, each hidden dimension:
//    LayerNorm statistics then run over the kept dimensions, weighted by the gate as MSG
//    defines it, or unweighted on a gated residual stream as CoFi does). A gate tensor that requires
//    grad receives gradients; gates are part of the model's saved state, and a linear ramp
//    (scheduled gates) raises them to 1 over a number of updates.
//
// The free functions below are the structural edits shared by the methods, done through the
// interface only (libscion_core).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "scion/nn.h"
#include "scion/plugin.h"

namespace scion {

// What one axis of a parameter indexes.
enum class Unit : uint8_t {
  none,    // nothing structural (vocabulary rows, positions, a scalar)
  hidden,  // the residual width
  head,    // head-major [heads * head_size] of one layer
  qkv,     // GPT's fused [3 * heads * head_size]: q | k | v blocks, each head-major
  ffn,     // the FFN units of one layer (SwiGLU: gate and up rows, down columns)
  kv_head, // key/value heads of a grouped-query layer, [kv_heads * head_size] head-major; kv
           // head j serves query heads j*g .. j*g+g-1 (g = heads / kv_heads), or those
           // Architecture::kv_map names in a layer with ragged groups. A layer whose key and
           // value heads equal its query heads lays them out as `head`.
};
const char* unit_name(Unit u);

struct AxisLayout {
  Unit unit = Unit::none;
  bool reads = false;  // an in-axis: the tensor reads these units (Net2Net divides duplicates here)
};

struct ParamLayout {
  int64_t layer = -1;        // block index, -1 for embeddings, final norms and heads
  AxisLayout axis[2];        // axes 0 and 1 (1-D tensors use axis 0 only)
  bool residual_write = false;  // writes into the residual stream (zeroed: an identity block)
  // Under CoFi's hidden gate (GateKind::hidden_kept) the model multiplies what this tensor
  // contributes by the gate along its hidden axis: the embedding tables, the residual writes,
  // the LayerNorms' weight and bias, except a LayerNorm read by a tied output head (the tied
  // table carries the gate already). Multiplying every such tensor by the gate and removing
  // the gate leaves the function on the kept dimensions unchanged (CoFi's finalisation).
  bool hidden_fold = false;
};

struct Architecture {
  std::string family;          // "gpt2" | "bert" | "llama" (nn::transformer_names)
  int64_t vocab = 0, context = 0, width = 0, head_size = 0;
  std::vector<int64_t> heads;  // per layer; 0 = attention sublayer removed
  // Per layer: key/value heads when grouped (GQA, MQA); empty when every layer has as many as
  // query heads (GPT-2, BERT, a multi-head Llama).
  std::vector<int64_t> kv_heads;
  int64_t kv_heads_at(int64_t layer) const { return kv_heads.empty() ? heads[size_t(layer)] : kv_heads[size_t(layer)]; }
  // Per layer: the key/value head each query head reads, where the layer's groups are ragged
  // (pruning kept some query heads of a group and all of another's, SDK 10); an empty list, or
  // a layer's empty entry, means the uniform grouping above. Kept empty for a uniform layer.
  std::vector<std::vector<int64_t>> kv_map;
  bool ragged(int64_t layer) const { return size_t(layer) < kv_map.size() && !kv_map[size_t(layer)].empty(); }
  // The key/value head of every query head of `layer`, ragged or not.
  std::vector<int64_t> kv_map_at(int64_t layer) const;
  std::vector<int64_t> ffn;    // per layer; 0 = FFN sublayer removed
  bool pre_ln = true;
  bool tied = true;            // output head tied to the input embedding
  int64_t layers() const { return int64_t(heads.size()); }
  bool uniform() const;        // every layer has the same heads and FFN size, no ragged groups
  Json to_json() const;
  static Architecture from_json(const Json& j);
};
bool operator==(const Architecture& a, const Architecture& b);

// Two rules for the hidden-dimension gate (a model has at most one of them set):
//  * hidden (MSG): every LayerNorm over the residual width weights its statistics by the gate
//    (Σ g·x / Σ g) and multiplies its output by it; the residual stream is not gated;
//  * hidden_kept (CoFi): the embeddings and every sublayer output are multiplied by the gate
//    (the residual stream is g ⊙ ...), every such LayerNorm takes its statistics unweighted
//    over the dimensions where g ≠ 0 and multiplies its output by g.
// The two compute the same logits when every gate value is 0 or 1.
enum class GateKind : uint8_t { layer, attention, head, ffn, ffn_unit, hidden, hidden_kept };
const char* gate_kind_name(GateKind k);
// Elements of a gate: 1 for layer/attention/ffn, heads/ffn units of the layer, or the width
// (hidden, hidden_kept).
int64_t gate_size(const Architecture& a, GateKind k, int64_t layer);

class SCION_API TransformerModel : public Model {
 public:
  ~TransformerModel() override;  // out of line in libscion_core: the class's key function

  virtual Architecture architecture() const = 0;
  // "transformer.h.3." / "bert.encoder.layer.3.": the names of block `layer`'s parameters.
  virtual std::string block_prefix(int64_t layer) const = 0;
  // Every parameter's structure. Throws naming the parameter when it is not one of the model's.
  virtual ParamLayout layout(const std::string& param) const = 0;
  // Names of the input embedding and of the untied output head ("transformer.wte.weight",
  // "lm_head.weight"): a tied model's head is the embedding, seen transposed.
  virtual std::pair<std::string, std::string> embedding_and_head() const = 0;
  // A fresh, seeded initialisation of `arch`, named as the model names its parameters.
  virtual nn::NamedTensors initial_parameters(const Architecture& arch, uint64_t seed) const = 0;
  // Becomes `arch` holding exactly `params` (every parameter of `arch`, shapes checked). Gates
  // and their ramp are cleared.
  virtual void rebuild(const Architecture& arch, const nn::NamedTensors& params) = 0;

  // Structural gates. `value` has gate_size() elements (f32); undefined removes the gate.
  virtual void set_gate(GateKind kind, int64_t layer, const Tensor& value) = 0;
  virtual Tensor gate(GateKind kind, int64_t layer) const = 0;
  // Scheduled gates: from update `at_step` on, every gate g rises as
  // g = start + (1 - start) · min(1, (step - at_step) / steps), start being the gates set now;
  // at the end of the ramp the gates are removed. steps = 0 cancels the ramp.
  virtual void set_gate_ramp(int64_t at_step, int64_t steps) = 0;
  // Updates into the ramp at `step`, or -1 when no ramp is running.
  virtual int64_t gate_ramp_progress(int64_t step) const = 0;

  // bert2BERT's sub-model training: each training step runs a bottom prefix of the layers of
  // a depth drawn from [min_layers, layers] (seeded by the step); disabled: the full model.
  virtual void set_depth_sampling(bool enabled, int64_t min_layers) = 0;
};

namespace surgery {

// One gate the model has set (layer -1 for a hidden gate).
struct GateEntry {
  GateKind kind;
  int64_t layer;
  Tensor value;
  std::string name() const;  // "<kind>.<layer>", for messages
};
// Every gate the model has set.
std::vector<GateEntry> gates(const TransformerModel& m);
void clear_gates(TransformerModel& m);

// Blocks in a new order: order[i] = the block that new block i copies, -1 for an identity
// block (fresh weights with its residual writes zeroed: exact in pre-LN models). Drops
// blocks not named; repeats blocks named twice.
void reorder_blocks(TransformerModel& m, const std::vector<int64_t>& order, uint64_t seed);

// Keeps only `keep` (sorted, distinct) units of one kind: heads or FFN units of `layer`, or
// hidden dimensions (layer -1, everywhere). An empty head or FFN keep list removes that
// sublayer. In a grouped-query layer `keep` names query heads: a key/value head stays while one
// of its query heads does and goes with the last of them, leaving ragged groups
// (Architecture::kv_map) where a group lost some of its query heads.
void keep_units(TransformerModel& m, Unit unit, int64_t layer, const std::vector<int64_t>& keep);

// The source parameter after reorder_blocks(order): a block parameter names its source block,
// "" for an identity block, anything else itself (for Op::state_source).
std::string block_source(const TransformerModel& m, const std::string& param, const std::vector<int64_t>& order);

// The query-head -> key/value-head map of a layer in Architecture::kv_map's form: empty when it
// is the uniform grouping of its heads over kv_heads (kv head j serving query heads
// j*g .. j*g+g-1), itself otherwise. Throws unless every entry is in [0, kv_heads), every key/
// value head is read and no query head reads a lower one than the head before it.
std::vector<int64_t> ragged_kv_map(const std::vector<int64_t>& kv_of_head, int64_t kv_heads);

// dst[.., j, ..] = t[.., index[j], ..] along `axis` (0 or 1) of a 1-D or 2-D f32 tensor.
Tensor select_units(const Tensor& t, int axis, const std::vector<int64_t>& index);

// The model behind an op's target, or an error naming `who` and the hint.
TransformerModel& transformer(Model& target, const char* who);

}  // namespace surgery
}  // namespace scion
