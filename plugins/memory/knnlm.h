// Evaluation-time scoring with memories: TRIME's joint normalisation over the vocabulary and a
// memory of earlier positions (local, or a FIFO long memory across windows), and kNN-LM's
// interpolation with a datastore's neighbours (Khandelwal et al., ICLR 2020):
//   p(w) = λ·p_kNN(w) + (1 − λ)·p_model(w),  p_kNN(w) ∝ Σ_{neighbours i with value w} exp(s_i / τ).
#pragma once
#include <cstdint>
#include <deque>
#include <string>
#include <vector>

namespace scion::memory {

// log p_kNN(target) from k neighbours' similarities and values; −inf when no neighbour has
// the target's value. Neighbours with a negative value (FAISS's "no result") do not count.
double knn_log_prob(const float* sims, const int32_t* values, int64_t k, int64_t target, double temperature);

// log(λ·exp(knn_logp) + (1 − λ)·exp(model_logp)); exactly model_logp at λ = 0.
double interpolate(double model_logp, double knn_logp, double lambda);

enum class EvalMemory { none, local, long_ };

// Scores windows in order. none: the plain LM. local: TRIME's joint normalisation over the
// window's earlier positions. long: also over a FIFO of the last `mem_size` scored positions of
// the earlier windows (their representations and next-token labels): every one of them, as the
// reference's memory, or with `same_document` only those of the query's document, so the
// memory starts afresh at each document boundary. `temperature` divides the memory
// similarities q·k/√d only (the reference's --softmax-temp).
class MemoryScorer {
 public:
  MemoryScorer(EvalMemory mode, int64_t mem_size, float temperature, bool same_document = false);
  void reset() { fifo_.clear(); }
  // log P(target) per position of one window: logits T × V, reps T × C, targets and document
  // ids T. Positions whose target is negative get 0 and are not memory. Positions before
  // `first_scored` (a sliding window's context, scored by an earlier window) get 0 too but are
  // local memory, as in the reference. Then (long) the scored positions enter the FIFO.
  std::vector<double> score_window(const float* logits, const float* reps, const int64_t* targets, const int64_t* docs,
                                   int64_t T, int64_t V, int64_t C, int64_t first_scored = 0);
  int64_t held() const { return int64_t(fifo_.size()); }

 private:
  struct Entry {
    std::vector<float> key;
    int64_t label, doc;
  };
  EvalMemory mode_;
  int64_t mem_size_;
  float temperature_;
  bool same_document_;
  std::deque<Entry> fifo_;
};

}  // namespace scion::memory
