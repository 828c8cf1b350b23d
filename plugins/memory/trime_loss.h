// TRIME's training objective (Zhong, Lei, Chen, EMNLP 2022): each token's probability is
// normalised jointly over the vocabulary and a memory of other positions of the batch,
//
//   P(w | c_i) = [exp(l_iw) + Σ_{j∈M(i), y_j = w} exp(s_ij)] / [Σ_v exp(l_iv) + Σ_{j∈M(i)} exp(s_ij)],
//   s_ij = g_i·g_j / (√d · temperature),
//
// with l the LM logits, g the last layer's FFN input (the same tensor for queries and keys, so
// gradients reach both sides) and y the next-token labels, which are the memory's values.
//
// The fused op never holds the N×N similarity matrix: it walks the queries in tiles of at most
// kTileRows positions of one segment, computes that tile's scores against only the keys its
// memory can contain (one segment for local memory, the segments up to the query's for long,
// the whole batch for ext), keeps two numbers per query (the log numerator and the log
// denominator) and recomputes the tile in the backward pass. Memory cost per step, beyond the
// logits and their gradient that plain cross-entropy needs too: kTileRows × N floats of scores
// for the current tile, 2N floats of saved statistics, and the N×C gradient of the
// representations.
#pragma once
#include <cstdint>
#include <vector>

#include "scion/tensor.h"

namespace scion::memory {

enum class MemoryKind {
  local,  // the earlier positions of the query's own segment (the position itself excluded)
  long_,  // local, plus every position of the batch's earlier segments of the same document
  ext,    // every position of the batch's other segments, plus local when `local` is on
};

// Which positions are in whose memory. Position i of the flattened batch is (row i / len,
// column i % len).
struct MemorySpec {
  MemoryKind kind = MemoryKind::local;
  int64_t rows = 1, len = 1;  // segments in the batch and tokens per segment
  // Document id of each position (long: an earlier segment counts only where its positions
  // belong to the query's document). Empty: every earlier segment counts.
  std::vector<int64_t> docs;
  bool local = true;         // ext: whether the local memory is on at this step
  float temperature = 1.f;   // divides the memory similarities only (evaluation; 1 in training)
};

// True when position j is in the memory of query i (labels aside: positions whose target is
// the ignore index are never in any memory).
bool in_memory(const MemorySpec& m, int64_t i, int64_t j);

struct TrimeStats {
  double memory_size = 0;  // mean number of memory positions per counted query
  double hit_rate = 0;     // fraction of counted queries whose memory holds their target
  double memory_mass = 0;  // mean share of the target's probability that comes from memory
};

// Mean over the positions whose target is not `ignore_index` of −log P(target). logits
// [B, T, V] or [N, V], reps [B, T, C] or [N, C], targets i64 [B, T] or [N], N = rows · len.
// Differentiable in logits and reps. CPU tensors.
Tensor trime_loss(const Tensor& logits, const Tensor& reps, const Tensor& targets, const MemorySpec& memory,
                  int64_t ignore_index = -100, TrimeStats* stats = nullptr);

// The largest number of query positions scored at once (the tile of the memory-cost bound).
constexpr int64_t kTileRows = 64;

}  // namespace scion::memory
