// What op.cofi_prune asks of the loss named by its `masks`: a pruning loss that gates a model
// with trained masks (loss.cofi, loss.sheared) and knows how to fold them into it.
#pragma once
#include "scion/surgery.h"

namespace scion::prune {

class MaskedPruning {
 public:
  virtual ~MaskedPruning() = default;
  virtual const TransformerModel* gated_model() const = 0;
  // The architecture the masks were made for (a model pruned or reshaped since is refused).
  virtual const Architecture& masked_architecture() const = 0;
  // Sets the final masks on `m` and turns it into the smaller dense model they leave.
  virtual void finalize(TransformerModel& m) const = 0;
};

}  // namespace scion::prune
