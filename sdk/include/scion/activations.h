// What each transformer block computes inside, recorded during forward passes: the activations
// that activation-based importance (Minitron: op.prune_importance) scores heads, FFN units,
// hidden channels and whole layers by. A forward hook in PyTorch's sense, scoped to a thread:
//
//   nn::ActivationRecord rec;
//   { nn::RecordActivations on(rec); model.forward(batch, ctx); }
//   // rec.blocks[l]: block l's tensors, in the order the blocks ran
//
// Nothing is recorded (and nothing costs more than one thread-local read per block) while no
// recorder is installed. Pre-norm blocks (GPT-2, Llama) record every field; post-norm blocks
// (BERT) leave the two norm outputs undefined (their norms act on the residual stream).
#pragma once
#include <vector>

#include "scion/tensor.h"

namespace scion::nn {

struct BlockActivations {
  Tensor input, output;      // [B, T, C]: the residual stream into and out of the block
  Tensor attention_norm;     // [B, T, C]: the attention sublayer's norm output (its input)
  Tensor attention_context;  // [B, T, heads * head_size]: the output projection's input
  Tensor ffn_norm;           // [B, T, C]: the FFN sublayer's norm output (its input)
  Tensor ffn_hidden;         // [B, T, F]: the down projection's input (after the activation)
};

struct ActivationRecord {
  std::vector<BlockActivations> blocks;
};

// Installs `record` for this thread while alive (restoring whatever was installed before).
class RecordActivations {
 public:
  explicit RecordActivations(ActivationRecord& record);
  ~RecordActivations();
  RecordActivations(const RecordActivations&) = delete;
  RecordActivations& operator=(const RecordActivations&) = delete;

 private:
  ActivationRecord* previous_;
};

// The record installed on this thread, or null (read by the blocks' forward passes).
ActivationRecord* activation_record();

}  // namespace scion::nn
