// Node classes of the language-model plugin library (scion_lm), shared by its source files.
// Growth ops live in this same library because they reach into the concrete model types,
// and C++ type identity does not cross hidden-visibility plugins.
#pragma once
#include <memory>

#include "bert_model.h"
#include "gpt_model.h"
#include "masked_growth.h"
#include "scion/plugin.h"
#include "scion/random.h"

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

class GptNode final : public Model {
 public:
  explicit GptNode(const Params& p);
  TensorMap forward(const TensorMap& inputs, const StepContext& ctx) override;
  nn::Module& module() override { return *model_; }
  bool frozen() const override { return frozen_; }
  double flops_per_token(int64_t seq_len) override;
  Json config() const override;
  GptModel& gpt() { return *model_; }
  void replace(std::unique_ptr<GptModel> m) {
    model_ = std::move(m);
    masked_ = {};
  }
  // After grow.masked: the masks rise with the updates since growth (ctx.step - at_step),
  // across stage boundaries.
  void set_mask_ramp(growth::MaskedFrom r) { masked_ = r; }
  const growth::MaskedFrom& mask_ramp() const { return masked_; }
  void set_subnets(SubnetSampling s) { subnets_ = s; }

 private:
  SubnetSampling subnets_;
  std::unique_ptr<GptModel> model_;
  growth::MaskedFrom masked_;
  bool frozen_ = false;
  uint64_t seed_ = 0;
};

class BertNode final : public Model {
 public:
  explicit BertNode(const Params& p);
  TensorMap forward(const TensorMap& inputs, const StepContext& ctx) override;
  nn::Module& module() override { return *model_; }
  bool frozen() const override { return frozen_; }
  double flops_per_token(int64_t seq_len) override;
  Json config() const override;
  BertModel& bert() { return *model_; }
  void replace(std::unique_ptr<BertModel> m) {
    model_ = std::move(m);
    masked_ = {};
  }
  void set_mask_ramp(growth::MaskedFrom r) { masked_ = r; }
  const growth::MaskedFrom& mask_ramp() const { return masked_; }
  void set_subnets(SubnetSampling s) { subnets_ = s; }

 private:
  SubnetSampling subnets_;
  std::unique_ptr<BertModel> model_;
  growth::MaskedFrom masked_;
  bool frozen_ = false;
  uint64_t seed_ = 0;
};

GptConfig gpt_config_from_json(const Json& j, GptConfig base);
BertConfig bert_config_from_json(const Json& j, BertConfig base);

}  // namespace scion::lm
