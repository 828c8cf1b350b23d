// The runs a report compares: each run's metrics.jsonl read into rows (bad lines skipped and
// counted), its graph.toml flattened to dotted keys, the figures the tables show, and the
// metrics sorted into the charts' groups.
#pragma once
#include <cmath>
#include <map>
#include <string>
#include <vector>

namespace scion::report {

// One line of metrics.jsonl: its numbers (NaN where the run wrote a value that was not finite)
// and its stage.
struct Row {
  std::map<std::string, double> v;
  std::string stage;
  double get(const std::string& k, double dflt = NAN) const {
    auto i = v.find(k);
    return i == v.end() ? dflt : i->second;
  }
  bool has(const std::string& k) const { return v.count(k) > 0; }
};

struct Run {
  std::string dir, name, label, color;  // label: the run's folder; name: unique among the runs
  std::vector<Row> rows;
  int non_finite = 0;            // NaN / Infinity values (a diverged step): gaps in the curves
  std::vector<int> malformed;    // line numbers that are not a JSON object with a step: skipped
  std::map<std::string, std::string> graph;  // the resolved graph.toml, flattened to dotted keys
  bool baseline = false;
};

// Reads the runs (a run without metrics.jsonl is an error), names them (parent/folder when
// two share a folder name) and gives each its colour. baseline[i]: whether run i is one.
std::vector<Run> read_runs(const std::vector<std::string>& dirs, const std::vector<bool>& baseline);

// ---- metrics ----

bool is_validation(const std::string& k);  // "evaluator/name"
bool higher_is_better(const std::string& k);
bool log_y_for(const std::string& k);      // perplexities are charted on a log y axis

// The charted metrics in their groups: validation metrics first (the "*/loss" ones leading),
// then the losses, then the other validation metrics and the rest.
struct Metrics {
  std::vector<std::string> validation, loss, more_validation, other;
  std::vector<std::string> all() const;
};
// `only`: the metrics to chart (all when empty); naming one that no run has is an error.
Metrics classify(const std::vector<Run>& runs, const std::vector<std::string>& only);
// The metric the summary and the savings use: `wanted`, else ppl/loss when a run has it, else
// the first validation metric, else the training loss.
std::string main_metric(const std::vector<Run>& runs, const Metrics& ms, const std::string& wanted);

// ---- per-run figures ----

struct Final {
  double value = NAN, step = NAN, flops = NAN;
};
struct Best {
  double value = NAN, step = NAN;
};
Final final_of(const Run& r, const std::string& m);  // the last finite value
Best best_of(const Run& r, const std::string& m);
double last_of(const Run& r, const std::string& k);
double max_of(const Run& r, const std::string& k);
double mean_of(const Run& r, const std::string& k);
std::vector<std::string> stages_of(const Run& r);  // in order, each once
// The graph keys in which the runs differ (run.name and run.out left out).
std::vector<std::string> differing_keys(const std::vector<Run>& runs);

}  // namespace scion::report
