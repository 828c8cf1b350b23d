// Knowledge inheritance (Qin et al., NAACL 2022): a larger student learns from its own
// language-modelling loss and from a smaller trained teacher,
//   L = (1 - α_t) · CE(student, targets) + α_t · τ² · KL(P_teacher(τ) ‖ P_student(τ)),
// over the positions that carry a target (all next-token positions for a causal LM, the
// masked positions for an MLM, as the reference code's --restrict_ce_to_mask). α_t is keyed
// to optimizer updates.
#pragma once
#include <cstdint>
#include <string>

#include "scion/teacher_cache.h"
#include "scion/tensor.h"

namespace scion::inherit {

// α schedules:
//  constant      α_t = start
//  linear        α_t = start · max(1 − t/steps, 0)  (the paper's annealing; start = 1 in KI)
//  until_surpassed  α_t = start until the student's validation loss first falls below the
//                teacher's, then 0 for good.
struct AlphaSchedule {
  enum class Kind { constant, linear, until_surpassed };
  Kind kind = Kind::linear;
  double start = 1.0;
  int64_t steps = 1000;
  static Kind parse(const std::string& s);  // "constant" | "linear" | "until_surpassed"
};

class Alpha {
 public:
  explicit Alpha(AlphaSchedule s) : s_(s) {}
  // α at optimizer update `update` (0-based: the first update uses α_0).
  double at(int64_t update) const;
  // Feeds a validation result; returns true when this call switched inheritance off.
  bool observe_validation(double student_loss, double teacher_loss);
  bool until_surpassed() const { return s_.kind == AlphaSchedule::Kind::until_surpassed; }
  bool surpassed() const { return surpassed_; }
  void set_surpassed(bool s) { surpassed_ = s; }  // restored from a checkpoint

 private:
  AlphaSchedule s_;
  bool surpassed_ = false;
};

struct InheritTerms {
  Tensor total;  // the weighted loss to minimise
  Tensor lm;     // CE term (unweighted)
  Tensor kl;     // τ²·KL term (unweighted)
};

// student/teacher logits [.., V] (the teacher's are never differentiated: pass them detached
// or computed under NoGradGuard); targets [..] with ignore_index where no target counts.
InheritTerms inherit_loss(const Tensor& student_logits, const Tensor& teacher_logits, const Tensor& targets,
                          double alpha, float temperature = 2.f, int64_t ignore_index = -100);

// The τ²·KL term from a teacher cache's sparse targets (scion/teacher_cache.h) in place of the
// teacher's logits, over the rows of `targets` that carry one (the mean over them, as
// inherit_loss). `format` and the targets' layout are the cache's:
//  topk, rest = bucket (default): KL between the teacher and the student over K+1 outcomes,
//        the K ids and "any other id" (the mass outside the K: the teacher's from the cache,
//        the student's 1 - Σ_K q_k), so the teacher's confidence is kept;
//  topk, rest = renormalize: the teacher's K probabilities renormalised to sum to 1 (the
//        knowledge-inheritance paper's top-K), KL over the K ids against the student's full
//        softmax;
//  sample: the K draws from the teacher's distribution, each id weighted by its count / K:
//        Σ (c_k/K)(log p_k − log q_k). Its expectation over the draws, and that of its gradient,
//        are the full KL and its gradient (Anshumann et al., ACL 2025, with the teacher as
//        the proposal).
// With K = V (every id) topk equals the full KL of inherit_loss in both rest modes.
enum class TopkRest { bucket, renormalize };
TopkRest topk_rest_from_string(const std::string& s);
Tensor cached_kl(const Tensor& student_logits, const teacher_cache::Targets& cached, teacher_cache::Format format,
                 const Tensor& targets, float temperature, TopkRest rest = TopkRest::bucket, int64_t ignore_index = -100);

}  // namespace scion::inherit
