// The report as one SVG picture, for papers: a row of charts per metric (against steps,
// tokens and FLOPs, the latter two on log axes), with the page's gaps, dots and stage marks.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "report/runs.h"

namespace scion::report {

struct Series {
  std::string run;                      // the run's name
  std::vector<double> x, y;
  // Where a new stage starts, on this chart's x axis, with the stage's name: drawn as a
  // dashed line (once per x over all series).
  std::vector<std::pair<double, std::string>> stages;
};

// The SVG of one chart.
std::string svg_chart(const std::string& title, const std::string& x_label, const std::vector<Series>& series,
                      bool log_y, bool log_x = false);

// The whole picture: every metric of `ms` that a run has, against each x axis a run logs.
std::string svg_picture(const std::vector<Run>& runs, const Metrics& ms);

}  // namespace scion::report
