// model.gpt, model.llama and model.bert: transformer model nodes that implement the SDK's
// model-surgery interface (scion::TransformerModel), so growth, expansion and pruning plugins
// edit them without knowing their types. They are one implementation (TransformerNode) over
// one transformer description: the decoder families (gpt2, llama) share DecoderModel, BERT
// adds its encoder's embeddings and masked-LM head; parameter layouts come from the families'
// name table (param_layout.h).
#pragma once
#include <memory>

#include "bert_model.h"
#include "decoder_model.h"
#include "scion/plugin.h"
#include "scion/random.h"
#include "scion/surgery.h"

#include <algorithm>

namespace scion::lm {

// bert2BERT's first training stage: while enabled, each training step runs a bottom prefix
// of the layers, its depth drawn uniformly from [min_layers, layers] (seeded by the step);
// the prefixes share the embeddings and the output head. Evaluation runs the full model.
struct SubnetSampling {
  bool enabled = false;
  int64_t min_layers = 1;
  int64_t depth(int64_t layers, uint64_t seed, int64_t step) const {
    const int64_t lo = std::clamp<int64_t>(min_layers, 1, layers);
    return lo + int64_t(random_bits(derive_seed(seed, 0x5b0), uint64_t(step)) % uint64_t(layers - lo + 1));
  }
  // The expected number of layers a training step runs (all of them when disabled), for the
  // FLOPs count: sub-model steps are cheaper, and the growth experiment counts that.
  double mean_depth(int64_t layers) const {
    if (!enabled || layers == 0) return double(layers);
    const int64_t lo = std::clamp<int64_t>(min_layers, 1, layers);
    return 0.5 * double(lo + layers);
  }
};

// M: DecoderModel or BertModel; C: its config.
template <class M, class C>
class TransformerNode : public TransformerModel {
 public:
  // The node's parameters over `base` (the family's defaults), or the config of the file
  // `load` names.
  TransformerNode(const Params& p, const C& base);
  // A trainable node of this config (tests and tools).
  explicit TransformerNode(const C& cfg) : model_(std::make_unique<M>(cfg)), seed_(cfg.seed) {}
  nn::Module& module() override { return *model_; }
  bool frozen() const override { return frozen_; }
  Json config() const override;
  // config.json of the model's Hugging Face family (scion export); refuses pruned models.
  Json hf_config() const override;
  Architecture architecture() const override;
  nn::NamedTensors initial_parameters(const Architecture& arch, uint64_t seed) const override;
  void rebuild(const Architecture& arch, const nn::NamedTensors& params) override;
  void set_gate(GateKind kind, int64_t layer, const Tensor& value) override;
  Tensor gate(GateKind kind, int64_t layer) const override;
  void set_gate_ramp(int64_t at_step, int64_t steps) override;
  int64_t gate_ramp_progress(int64_t step) const override;
  void set_depth_sampling(bool enabled, int64_t min_layers) override { subnets_ = {enabled, min_layers}; }
  M& impl() { return *model_; }
  // Whether forward() also gives port "layers" (the node parameter layer_outputs).
  void set_layer_outputs(bool on) { layer_outputs_ = on; }
  // Sets the ramped gates to their values at update `step` (forward() does this itself).
  void apply_gate_ramp(int64_t step);

 protected:
  // Sets the ramped gates for `step` and picks the depth this step runs (-1: all layers).
  int64_t prepare(const StepContext& ctx);
  // The model's FLOPs count less the layers a sub-model step skips on average.
  double flops_with_subnets(int64_t seq_len) const;
  C config_for(const Architecture& a) const;
  std::unique_ptr<M> model_;
  SubnetSampling subnets_;
  bool frozen_ = false;
  bool layer_outputs_ = false;  // emit the "layers" port (every block's output, stacked)
  uint64_t seed_ = 0;
  // A running gate ramp: the gates set when it began, and its span in updates.
  std::vector<surgery::GateEntry> ramp_start_;
  int64_t ramp_at_ = 0, ramp_steps_ = 0;
};

// model.gpt (family gpt2) and model.llama (family llama).
class DecoderNode final : public TransformerNode<DecoderModel, DecoderConfig> {
 public:
  using TransformerNode::TransformerNode;
  DecoderNode(const Params& p, const std::string& family) : TransformerNode(p, DecoderConfig::of_family(family)) {}
  TensorMap forward(const TensorMap& inputs, const StepContext& ctx) override;
  LmHead lm_head(const Tensor& hidden) override;
  double flops_per_token(int64_t seq_len) override { return flops_with_subnets(seq_len); }
  std::string block_prefix(int64_t layer) const override;
  ParamLayout layout(const std::string& param) const override;
  std::pair<std::string, std::string> embedding_and_head() const override;
};

class BertNode final : public TransformerNode<BertModel, BertConfig> {
 public:
  using TransformerNode::TransformerNode;
  explicit BertNode(const Params& p) : TransformerNode(p, BertConfig{}) {}
  TensorMap forward(const TensorMap& inputs, const StepContext& ctx) override;
  LmHead lm_head(const Tensor& hidden) override;
  double flops_per_token(int64_t seq_len) override { return flops_with_subnets(seq_len); }
  std::string block_prefix(int64_t layer) const override { return "bert.encoder.layer." + std::to_string(layer) + "."; }
  ParamLayout layout(const std::string& param) const override;
  std::pair<std::string, std::string> embedding_and_head() const override {
    return {"bert.embeddings.word_embeddings.weight", "cls.predictions.decoder.weight"};
  }
};

// [L, B, T, C]: every block's output stacked, for layerwise distillation (port "layers").
Tensor stack_layers(const std::vector<Tensor>& layers);

// The configs' JSON (a checkpoint's scion.config): read over `base`, and written.
DecoderConfig decoder_config_from_json(const Json& j, DecoderConfig base);
BertConfig bert_config_from_json(const Json& j, BertConfig base);
Json config_to_json(const DecoderConfig& c);
Json config_to_json(const BertConfig& c);

}  // namespace scion::lm
