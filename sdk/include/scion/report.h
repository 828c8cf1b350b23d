// `scion report`: one self-contained HTML page (inline SVG, no scripts, no network) with the
// curves of several runs, so a researcher sees a comparison at a glance.
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
// line for a malformed metrics line; a run without metrics.jsonl is an error too.
void write_html(const std::vector<std::string>& run_dirs, const std::string& out_path);

// The SVG of one chart (exposed for tests).
std::string svg_chart(const std::string& title, const std::string& x_label, const std::vector<Series>& series,
                      bool log_y);

}  // namespace scion::report
