// ELLE's memory replay: which earlier domain each replayed window comes from.
//
// A domain's weight is its measured forgetting-recovery rate, as in the reference code's
// `ppl_decreased`: after each evaluation, the drop of its validation loss since the previous
// evaluation divided by the windows replayed from it in between (floored at 1e-9). A domain
// whose loss rose (or stayed) gets the largest weight of the others (1 when none has one):
// it is being forgotten, so it is replayed as much as the most useful one. Before a domain
// has two evaluations its weight is 1. reset() forgets the weights, losses and counts: ELLE
// starts every domain's stage with weight 1 for all earlier domains. Draws are a pure function of (seed, draw count), so a
// resumed run draws the same domains; state() holds everything.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "scion/json.h"

namespace scion::lifelong {

class ReplaySampler {
 public:
  ReplaySampler() = default;
  explicit ReplaySampler(uint64_t seed) : seed_(seed) {}
  // Picks a domain among `candidates` (non-empty) by weight and counts the replayed window.
  std::string draw(const std::vector<std::string>& candidates);
  // New validation losses by domain: updates the weights of the domains that have a previous
  // loss, then resets their replay counts.
  void observe(const std::map<std::string, double>& losses);
  // Every weight back to 1, no previous loss, no replayed window (the draw count goes on).
  void reset();
  double weight(const std::string& domain) const;
  int64_t replayed(const std::string& domain) const;  // since the last observation
  int64_t draws() const { return draws_; }
  Json state() const;
  void restore(const Json& j);

 private:
  uint64_t seed_ = 0;
  int64_t draws_ = 0;
  std::map<std::string, double> last_loss_, weight_;
  std::map<std::string, int64_t> replayed_;
};

// How many of a batch's rows are replayed: a running accumulator, so that the share over any
// run of batches is `fraction` to within one row (0.1 of 8 rows: 0, 1, 1, 1, 0, 1, ...
// adding up to 0.8 per batch on average).
struct ReplayShare {
  double fraction = 0.1;
  double carry = 0;  // fractional rows owed
  int64_t rows(int64_t batch) {
    carry += fraction * double(batch);
    const int64_t n = int64_t(carry + 1e-9);
    carry -= double(n);
    return n;
  }
};

// `count` distinct indices of [0, n) drawn with a seeded partial Fisher-Yates shuffle, sorted.
std::vector<int64_t> sample_indices(int64_t n, int64_t count, uint64_t seed);

}  // namespace scion::lifelong
