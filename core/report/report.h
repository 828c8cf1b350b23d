// `scion report`: one self-contained HTML page (a summary table, the compute a run saved
// against a family of from-scratch baselines, interactive charts drawn by an inline script,
// no network), or one SVG picture for papers, from the metrics of several runs.
// The pieces: runs.h (reading runs, sorting their metrics), savings.h (the compute saved),
// axes.h (the axis rules of every chart), svg.h (the picture), html.h (the page).
#pragma once
#include <string>
#include <vector>

namespace scion::report {

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

}  // namespace scion::report
