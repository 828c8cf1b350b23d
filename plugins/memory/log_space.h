// Sums of probabilities kept as logarithms (TRIME's joint normaliser, kNN-LM's mixture).
#pragma once
#include <algorithm>
#include <cmath>
#include <limits>

namespace scion::memory {

template <class T>
constexpr T kLogZero = -std::numeric_limits<T>::infinity();

// log(exp(a) + exp(b)), exact when either side is log 0.
template <class T>
T log_add(T a, T b) {
  if (a == kLogZero<T>) return b;
  if (b == kLogZero<T>) return a;
  const T m = std::max(a, b);
  return m + std::log(std::exp(a - m) + std::exp(b - m));
}

}  // namespace scion::memory
