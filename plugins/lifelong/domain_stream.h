// data.domains: ELLE's ordered stream of domains (plugin entry in lifelong_nodes.cpp).
//
// A graph lists the domains (folders <root>/<domain>/{train,valid}.txt) and, per stage, what
// the stage reads (`schedule`): a domain's training stream, or "warmup" (function-recovering
// warmup after an expansion: the earlier domains' memories only, never the new domain).
//
//  * Memory: when a domain's stage ends (Plugin::end_stage, before the checkpoint closing the
//    stage), the node keeps a seeded sample of the domain's training windows up to
//    `memory_tokens` tokens. Memories are in state(), so checkpoints hold them.
//  * Replay: in a domain's stage, `replay` of every batch's rows (a running share, ReplayShare)
//    are windows from earlier domains' memories, each domain drawn by ReplaySampler (weights
//    from the forgetting measured by the evaluator named in `evaluator`, via observe()). Each
//    domain's stage starts with every weight at 1 (ELLE resets them with a new domain).
//  * Warmup: every row comes from memories: 1 - replay of them from the domain learned last,
//    the rest drawn by the sampler over the domains before it (ELLE's FRW trains on the
//    previous domain's memory with replay of the older ones); with no older domain, all rows
//    come from the last one.
// Besides tokens and targets the node gives `domain`, i64[B], each row's domain index (for
// prompt.domain). Everything (stream positions, memories, sampler, counters) resumes.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "replay.h"
#include "scion/data.h"
#include "scion/plugin.h"

namespace scion::lifelong {

class DomainStream final : public DataSource {
 public:
  static constexpr const char* kWarmup = "warmup";

  DomainStream(const Params& p, const NodeResolver& r);
  TensorMap next(const StepContext& ctx) override;
  void end_stage(const StepContext& ctx) override;
  void observe(const std::map<std::string, double>& metrics) override;
  int64_t tokens_per_batch() const override { return batch_ * seq_len_; }
  Json state() const override;
  void restore(const Json& j) override;

  const std::vector<std::string>& domains() const { return domains_; }
  int64_t index_of(const std::string& domain) const;
  // What a stage reads: a domain, kWarmup, or "" when the schedule does not name it.
  std::string reads(const std::string& stage) const;
  // Domains trained in the stages up to `stage` (included) / strictly before it, in order.
  std::vector<std::string> seen(const std::string& stage) const;
  std::vector<std::string> earlier(const std::string& stage) const;
  // The stage that trains `domain`.
  std::string stage_of(const std::string& domain) const;
  // Validation batches of a domain (its valid.txt; for MLM a fixed mask), with `domain` set.
  const std::vector<TensorMap>& validation_of(const std::string& domain, int64_t max_batches);
  // Domains with a memory, in the order they were kept; a memory's windows (seq_len + 1 tokens).
  const std::vector<std::string>& memory_order() const { return memory_order_; }
  const std::vector<std::vector<int32_t>>& memory(const std::string& domain) const { return memories_.at(domain); }
  const ReplaySampler& sampler() const { return sampler_; }
  const std::string& evaluator() const { return evaluator_; }

 private:
  const std::vector<int32_t>& pick(const std::string& domain);
  TensorMap finish(const data::Batch& b, Tensor d, uint64_t seed) const;

  std::shared_ptr<scion::Tokenizer> tok_;
  data::TokenizeFn tokenize_;
  std::string root_, evaluator_;
  std::vector<std::string> domains_, stages_;
  std::map<std::string, std::string> schedule_;  // stage -> domain | kWarmup
  int64_t seq_len_ = 0, batch_ = 0, memory_windows_ = 0;
  uint64_t seed_ = 0;
  data::MlmConfig mlm_;
  std::map<std::string, std::unique_ptr<data::TextStream>> streams_;  // by domain
  std::map<std::string, std::vector<std::vector<int32_t>>> memories_;
  std::vector<std::string> memory_order_;
  std::map<std::string, std::vector<TensorMap>> valid_;
  ReplaySampler sampler_;
  ReplayShare share_;
  int64_t picks_ = 0;  // memory windows drawn so far (the window-choice stream)
  std::string replay_stage_;  // the domain stage whose start last reset the replay weights
};

}  // namespace scion::lifelong
