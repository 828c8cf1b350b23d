// Learning-rate schedule of a stage: linear warmup, then constant, linear or cosine decay to
// min_lr at the end of the stage.
#pragma once
#include <cmath>
#include <cstdint>
#include <string>

namespace scion::runtime {

inline double learning_rate(int64_t stage_step, int64_t steps, double lr, int64_t warmup, const std::string& decay,
                            double min_lr) {
  if (warmup > 0 && stage_step < warmup) return lr * double(stage_step + 1) / double(warmup);
  if (decay == "constant" || steps <= warmup) return lr;
  const double progress = std::min(1.0, double(stage_step - warmup) / double(std::max<int64_t>(1, steps - warmup)));
  if (decay == "linear") return min_lr + (lr - min_lr) * (1.0 - progress);
  return min_lr + 0.5 * (lr - min_lr) * (1.0 + std::cos(M_PI * progress));  // cosine
}

}  // namespace scion::runtime
