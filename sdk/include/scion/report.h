// `scion report`: one self-contained HTML page (a summary table, the compute a run saved
// against a family of from-scratch baselines, interactive charts drawn by an inline script,
// no network), or one SVG picture for papers, from the metrics of several runs.
#pragma once
#include <string>
#include <utility>
#include <vector>

namespace scion::report {

struct Series {
  std::string run;                      // the run's name (its folder)
  std::vector<double> x, y;
  // Where a new stage starts, on this chart's x axis, with the stage's name: drawn as a
  // dashed line (once per x over all series).
  std::vector<std::pair<double, std::string>> stages;
};

struct Options {
  std::vector<std::string> metrics;   // the metrics to chart (all when empty; an unknown name is an error)
  std::vector<std::string> baseline;  // from-scratch runs at several budgets (also charted)
  std::string metric;                 // the validation metric the table and savings use (ppl/loss, or the first)
};

// Reads RUN_DIR/metrics.jsonl (and RUN_DIR/graph.toml, when there) of each run. Every numeric
// key other than the x axes ("step", "tokens", "flops") and the schedule (lr, tokens_per_s,
// elapsed_s) becomes a chart; validation metrics (keys "evaluator/name") come first, then the
// losses, then the others. A value that is not finite (NaN, Infinity: a diverged step) is a
// gap in its curve; a line that is not JSON is skipped; both are counted in the page. A run
// without metrics.jsonl is an error, and so is an output path that is one of the inputs.
// Writes an SVG picture when out_path ends in .svg, an HTML page otherwise. Returns the
// compute-saved table (Markdown) when there is a baseline, an empty string otherwise.
std::string write(const std::vector<std::string>& run_dirs, const std::string& out_path, const Options& opt);
void write(const std::vector<std::string>& run_dirs, const std::string& out_path,
           const std::vector<std::string>& only = {});
void write_html(const std::vector<std::string>& run_dirs, const std::string& out_path);

// Axis rules shared by the SVG and the page's script (exposed for tests): ticks at 1-2-5
// steps (linear) or at powers of ten (log; with 2 and 5 between when the range is short).
std::vector<double> nice_ticks(double lo, double hi, bool log_scale);
// A tick label: at most 4 significant digits, SI suffixes from 1000 up (1.5k, 20M, 3G).
std::string si(double v);

// The SVG of one chart (exposed for tests).
std::string svg_chart(const std::string& title, const std::string& x_label, const std::vector<Series>& series,
                      bool log_y, bool log_x = false);

}  // namespace scion::report
