// The compute a run saved against a family of from-scratch baselines at several budgets (the
// figures of bench/experiments/compare.py; docs/report.md defines them).
#pragma once
#include <cmath>
#include <string>
#include <vector>

#include "report/runs.h"

namespace scion::report {

struct Saving {
  std::string run, label, reference;  // reference: the baseline of nearest final FLOPs
  double final = NAN, final_flops = NAN, delta = NAN, equiv = NAN, steps_saved = NAN, flops_saved = NAN;
  std::string bound;  // "<" or ">" when the final value lies outside the baselines' range
  bool crossed = false;
};

// Every run that is not a baseline and has a final `metric` with its FLOPs, priced against the
// baselines in its folder (one seed's), or all baselines when none is there.
std::vector<Saving> savings(const std::vector<Run>& runs, const std::string& metric);

// Mean, min and max of the finite values.
struct Agg {
  double mean = NAN, min = NAN, max = NAN;
  int n = 0;
};
std::string agg_text(const Agg& a, bool percent);  // "+0.1 (-0.2 … +0.3)", "12.0%", "—"

// The savings of the runs under one name (several seeds).
struct LabelRow {
  std::string label;
  int n = 0, crossed = 0;
  Agg delta, equiv, steps, flops;
  std::string bounds;
  std::string crossed_note() const;  // " (1/2 cross)" unless every run crossed
};
std::vector<LabelRow> by_label(const std::vector<Saving>& ss);

// The table `scion report --baseline` prints.
std::string savings_markdown(const std::vector<LabelRow>& rows, const std::string& metric);

}  // namespace scion::report
