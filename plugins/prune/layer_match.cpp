#include "layer_match.h"

#include <limits>

#include "scion/autograd.h"
#include "scion/ops.h"

namespace scion::prune {

std::vector<int64_t> default_teacher_layers(int64_t L) {
  std::vector<int64_t> out;
  if (L < 4) {
    for (int64_t l = 0; l < L; ++l) out.push_back(l);
    return out;
  }
  for (int64_t q = 1; q <= 4; ++q) out.push_back(q * L / 4 - 1);
  return out;
}

LayerMatch match_layers(const Tensor& student, const Tensor& teacher, const std::vector<int64_t>& teacher_layers,
                        const std::vector<bool>& exists) {
  const int64_t Ls = student.size(0), Lt = teacher.size(0);
  SCION_CHECK(int64_t(exists.size()) == Ls, "cofi: ", exists.size(), " layer flags for ", Ls, " student layers");
  SCION_CHECK(student.dim() == 4 && teacher.dim() == 4 && student.size(1) == teacher.size(1) && student.size(2) == teacher.size(2) &&
                  student.size(3) == teacher.size(3),
              "cofi: student layers ", student.desc(), " and teacher layers ", teacher.desc(),
              " must be [L, B, T, C] with the same B, T and C");
  for (int64_t t : teacher_layers)
    SCION_CHECK(t >= 0 && t < Lt, "cofi: teacher layer ", t, " does not exist (the teacher has ", Lt, " layers)");
  LayerMatch r;
  r.student.assign(teacher_layers.size(), -1);
  int64_t below = Ls;
  for (size_t k = teacher_layers.size(); k-- > 0;) {
    const Tensor tl = teacher.narrow(0, teacher_layers[k], 1);
    int64_t best = -1;
    float best_mse = std::numeric_limits<float>::infinity();
    {
      NoGradGuard ng;  // the choice is not differentiated, only the chosen pair's MSE
      for (int64_t s = 0; s < below; ++s) {
        if (!exists[size_t(s)]) continue;
        const float e = ops::mse(student.detach().narrow(0, s, 1), tl.detach()).item();
        if (e < best_mse) best_mse = e, best = s;
      }
    }
    // Nothing left below: the reference matches the previous student layer again (none before
    // the first match: the reference would index past its layers; the term is skipped).
    if (best < 0) best = below < Ls ? below : -1;
    if (best < 0) continue;
    r.student[k] = best;
    Tensor e = ops::mse(student.narrow(0, best, 1), tl);
    r.loss = r.loss.defined() ? ops::add(r.loss, e) : e;
    below = best;
  }
  if (!r.loss.defined()) r.loss = ops::mul_scalar(ops::sum_all(student), 0.f);
  return r;
}

}  // namespace scion::prune
