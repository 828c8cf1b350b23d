// Core-internal: letting a core op's backward add its gradient straight into a leaf's `.grad`
// instead of returning a dense gradient that autograd would add (the tied embedding's
// backward: a zero-filled [V, C] table plus its sum into the head's gradient, about 200 MB of
// memory traffic per step of the CPU benchmark GPT, for a few hundred touched rows).
#pragma once
#include "scion/tensor.h"

namespace scion::autograd::detail {

// During backward, on the thread running it: leaf's accumulated gradient when the leaf alone
// holds it (f32, contiguous, its whole buffer), so that writing into it changes no other
// handle; else an undefined tensor, and the op returns its gradient as usual.
Tensor accumulation_target(const Tensor& leaf);

}  // namespace scion::autograd::detail
