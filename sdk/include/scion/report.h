// `scion report`: one self-contained HTML page (inline SVG, no scripts, no network), or one
// SVG picture, with the curves of several runs, so a researcher sees a comparison at a glance.
#pragma once
#include <string>
#include <vector>

namespace scion::report {

struct Series {
  std::string run;                      // the run's name (its folder)
  std::vector<double> x, y;
};

// Reads RUN_DIR/metrics.jsonl of each run. Every numeric key other than the x axes becomes a
// chart; x axes are "step", and "tokens" and "flops" when the metrics carry them (cumulative
// training tokens and FLOPs, teacher forward passes included). Throws naming the file and
// line for a malformed metrics line; a run without metrics.jsonl is an error too. A value
// that is not finite (NaN, Infinity: a diverged step) is a gap in its curve, counted in the
// legend and in the page's list of runs.
void write_html(const std::vector<std::string>& run_dirs, const std::string& out_path);
// As write_html, or one SVG picture (a row of charts per metric) when out_path ends in .svg;
// `only` keeps the named metrics (all when empty; an unknown name is an error).
void write(const std::vector<std::string>& run_dirs, const std::string& out_path,
           const std::vector<std::string>& only = {});

// The SVG of one chart (exposed for tests).
std::string svg_chart(const std::string& title, const std::string& x_label, const std::vector<Series>& series,
                      bool log_y);

}  // namespace scion::report
