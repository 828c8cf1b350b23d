// CoFi's layerwise distillation: student hidden states through a learned linear map matched
// to chosen teacher layers by the reference's top-down rule (its layer_distill_version 4).
#pragma once
#include <vector>

#include "scion/tensor.h"

namespace scion::prune {

struct LayerMatch {
  Tensor loss;                  // Σ over matched pairs of MSE(map(student_s), teacher_t), on the tape
  std::vector<int64_t> student;  // the student layer matched to each teacher layer (-1: none)
};

// student [Ls, B, T, C] (already mapped by the layer transformation), teacher [Lt, B, T, C'].
// Teacher layers are taken from the top down; each takes, among the student layers that
// still exist and lie strictly below the previous match, the one closest in MSE. `exists[s]`:
// student layer s has an open attention or FFN sublayer (the reference checks the attention
// only: its issue #53). A teacher layer with no student layer left is matched to the previous
// match again, as the reference does; one with none at all (the top teacher layer when no
// student layer exists) is not matched.
LayerMatch match_layers(const Tensor& student, const Tensor& teacher, const std::vector<int64_t>& teacher_layers,
                        const std::vector<bool>& exists);

// The reference's teacher layers for Lt layers: the top layer of each quarter (2, 5, 8, 11
// of 12), or every layer when there are fewer than four.
std::vector<int64_t> default_teacher_layers(int64_t teacher_layers);

}  // namespace scion::prune
