#include "report/report.h"

#include <filesystem>

#include "report/html.h"
#include "report/runs.h"
#include "report/savings.h"
#include "report/svg.h"
#include "scion/error.h"
#include "scion/files.h"

namespace scion::report {

namespace fs = std::filesystem;

namespace {

bool same_file(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  if (fs::exists(a, ec) && fs::exists(b, ec)) return fs::equivalent(a, b, ec);
  return fs::weakly_canonical(a, ec) == fs::weakly_canonical(b, ec);
}

// The runs to read, each marked as a baseline or not: a baseline named among the runs is that
// run, the others are read after them.
std::vector<std::string> inputs(const std::vector<std::string>& runs, const std::vector<std::string>& baseline,
                                std::vector<bool>* is_base) {
  std::vector<std::string> dirs = runs;
  is_base->assign(dirs.size(), false);
  for (const auto& b : baseline) {
    bool found = false;
    for (size_t i = 0; i < dirs.size(); ++i)
      if (same_file(dirs[i], b)) (*is_base)[i] = found = true;
    if (!found) dirs.push_back(b), is_base->push_back(true);
  }
  SCION_CHECK(!dirs.empty(), "report: name at least one run directory");
  return dirs;
}

void refuse_writing_over_an_input(const std::string& out_path, const std::vector<std::string>& dirs) {
  for (const auto& d : dirs) {
    SCION_CHECK(!same_file(out_path, d), "report: --out '", out_path, "' is the run directory '", d, "'");
    for (const char* f : {"metrics.jsonl", "graph.toml"})
      SCION_CHECK(!same_file(out_path, fs::path(d) / f), "report: --out '", out_path, "' is one of the inputs ('",
                  (fs::path(d) / f).string(), "'); name another file");
  }
  files::check_output(out_path, {}, "report");  // a run's weights or checkpoint, a device
}

// A run with no metric line has nothing to draw: a garbage or empty metrics.jsonl is named,
// never reported as a run that was written.
void refuse_runs_without_metrics(const std::vector<Run>& runs) {
  for (const Run& r : runs)
    SCION_CHECK(!r.rows.empty(), "report: '", (fs::path(r.dir) / "metrics.jsonl").string(), "' has no metric line (",
                r.malformed.empty() ? std::string("it is empty")
                                    : std::to_string(r.malformed.size()) + " lines, none a JSON object with a \"step\"",
                ") (hint: name the directory of a run that has logged at least one step)");
}

bool is_svg(const std::string& path) { return path.size() > 4 && path.compare(path.size() - 4, 4, ".svg") == 0; }

}  // namespace

std::string write(const std::vector<std::string>& run_dirs, const std::string& out_path, const Options& opt) {
  std::vector<bool> is_base;
  const std::vector<std::string> dirs = inputs(run_dirs, opt.baseline, &is_base);
  refuse_writing_over_an_input(out_path, dirs);
  const std::vector<Run> runs = read_runs(dirs, is_base);  // everything is read before anything is written
  refuse_runs_without_metrics(runs);
  const Metrics ms = classify(runs, opt.metrics);
  const std::string metric = main_metric(runs, ms, opt.metric);
  const std::vector<Saving> ss = savings(runs, metric);
  const std::vector<LabelRow> rows = by_label(ss);
  const bool baseline = !opt.baseline.empty();
  SCION_CHECK(!baseline || !ss.empty(), "report: no run to price against the baseline (each needs a final '", metric,
              "' with its FLOPs, and so does each baseline)");
  files::write_atomic(out_path, is_svg(out_path) ? svg_picture(runs, ms)
                                                 : html_page({runs, ms, metric, baseline, ss, rows}));
  return baseline ? savings_markdown(rows, metric) : "";
}

void write(const std::vector<std::string>& run_dirs, const std::string& out_path, const std::vector<std::string>& only) {
  Options o;
  o.metrics = only;
  write(run_dirs, out_path, o);
}

void write_html(const std::vector<std::string>& run_dirs, const std::string& out_path) { write(run_dirs, out_path); }

}  // namespace scion::report
