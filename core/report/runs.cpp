#include "report/runs.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "report/format.h"
#include "scion/error.h"
#include "scion/json.h"

namespace scion::report {

namespace fs = std::filesystem;

namespace {

void flatten(const toml::node& n, const std::string& prefix, std::map<std::string, std::string>* out) {
  if (const auto* t = n.as_table()) {
    for (const auto& [k, v] : *t) flatten(v, prefix.empty() ? std::string(k.str()) : prefix + "." + std::string(k.str()), out);
  } else if (const auto* a = n.as_array(); a && !a->empty() && a->front().is_table()) {
    for (size_t i = 0; i < a->size(); ++i) flatten(*a->get(i), prefix + "." + std::to_string(i), out);
  } else {
    std::ostringstream s;
    if (const auto* a2 = n.as_array()) s << *a2;
    else if (const auto* f = n.as_floating_point()) s << num(f->get(), 6);
    else if (n.is_string()) s << n.as_string()->get();
    else n.visit([&](const auto& x) { s << x; });
    (*out)[prefix] = s.str();
  }
}

// One line of metrics.jsonl as a row, its values that are not finite counted; none when it is
// not a JSON object with a step (a torn or hand-edited line: skipped and counted, never a refusal).
std::optional<Row> parse_line(const std::string& line, const std::string& where, int* non_finite) {
  Json j;
  try {
    j = json_parse(line, where);
  } catch (const Error&) {
    return std::nullopt;
  }
  if (!j.is_object()) return std::nullopt;
  Row row;
  for (const auto& [k, v] : json_object(j)) {
    if (v.is_number()) {
      row.v[k] = json_number(v);
      if (!std::isfinite(row.v[k])) ++*non_finite;
    } else if (v.is_null()) {  // how the executor writes a value that was not finite
      row.v[k] = NAN;
      ++*non_finite;
    } else if (k == "stage" && v.is_string()) {
      row.stage = json_string(v);
    }
  }
  if (!row.has("step")) return std::nullopt;
  return row;
}

void read_metrics(const fs::path& p, Run* r) {
  std::ifstream in(p);
  SCION_CHECK(in.good(), "report: '", p.string(), "' does not exist (is '", r->dir, "' a run directory?)");
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    if (auto row = parse_line(line, p.string() + ":" + std::to_string(n), &r->non_finite))
      r->rows.push_back(std::move(*row));
    else
      r->malformed.push_back(n);
  }
}

Run read_run(const std::string& dir) {
  Run r;
  r.dir = dir;
  r.label = fs::path(dir).lexically_normal().filename().string();
  if (r.label.empty()) r.label = fs::path(dir).lexically_normal().parent_path().filename().string();
  r.name = r.label;
  read_metrics(fs::path(dir) / "metrics.jsonl", &r);
  const fs::path g = fs::path(dir) / "graph.toml";
  if (fs::exists(g)) {
    try {
      flatten(toml::parse_file(g.string()), "", &r.graph);
    } catch (const std::exception&) {
      // an unreadable graph only loses the "differs in" column
    }
  }
  return r;
}

bool is_axis(const std::string& k) { return k == "step" || k == "tokens" || k == "flops"; }
bool is_schedule(const std::string& k) {
  return k == "elapsed_s" || k == "tokens_per_s" || k == "lr" || k == "epoch";
}
bool ends_loss(const std::string& k) { return k.size() >= 4 && k.compare(k.size() - 4, 4, "loss") == 0; }

// The metrics of all runs: every key but the x axes and the schedule.
std::set<std::string> metric_names(const std::vector<Run>& runs) {
  std::set<std::string> names;
  for (const auto& r : runs)
    for (const auto& row : r.rows)
      for (const auto& [k, v] : row.v)
        if (!is_axis(k) && !is_schedule(k)) names.insert(k);
  return names;
}

}  // namespace

std::vector<Run> read_runs(const std::vector<std::string>& dirs, const std::vector<bool>& baseline) {
  std::vector<Run> runs;
  for (size_t i = 0; i < dirs.size(); ++i) {
    runs.push_back(read_run(dirs[i]));
    runs.back().baseline = baseline[i];
  }
  // Two runs with one folder name (one variant, several seeds): named by parent/folder, and
  // grouped under the folder name in the savings table.
  std::map<std::string, int> count;
  for (const auto& r : runs) ++count[r.label];
  for (size_t i = 0; i < runs.size(); ++i) {
    auto& r = runs[i];
    if (count[r.label] > 1) {
      const std::string parent = fs::path(r.dir).lexically_normal().parent_path().filename().string();
      r.name = (parent.empty() ? std::to_string(i) : parent) + "/" + r.label;
    }
    r.color = color(i);
  }
  return runs;
}

bool is_validation(const std::string& k) { return k.find('/') != std::string::npos; }
bool higher_is_better(const std::string& k) {
  return k.find("acc") != std::string::npos || k.find("bleu") != std::string::npos || k.find("score") != std::string::npos;
}
bool log_y_for(const std::string& k) { return k.find("ppl") != std::string::npos && k.find("loss") == std::string::npos; }

std::vector<std::string> Metrics::all() const {
  std::vector<std::string> a = validation;
  a.insert(a.end(), loss.begin(), loss.end());
  a.insert(a.end(), more_validation.begin(), more_validation.end());
  a.insert(a.end(), other.begin(), other.end());
  return a;
}

Metrics classify(const std::vector<Run>& runs, const std::vector<std::string>& only) {
  const std::set<std::string> names = metric_names(runs);
  for (const auto& m : only) {
    SCION_CHECK(!is_axis(m) && !is_schedule(m), "report: '", m, "' is an x axis or a schedule, not a result to chart");
    SCION_CHECK(names.count(m), "report: no run has metric '", m, "' (hint: the metrics are the keys of metrics.jsonl, ",
                "e.g. loss, ppl/loss)");
  }
  Metrics out;
  std::vector<std::string> val;
  for (const auto& m : names) {
    if (!only.empty() && std::find(only.begin(), only.end(), m) == only.end()) continue;
    if (is_validation(m)) val.push_back(m);
    else if (m == "loss") out.loss.insert(out.loss.begin(), m);
    else if (m.find("loss") != std::string::npos) out.loss.push_back(m);
    else out.other.push_back(m);
  }
  // "ppl/loss" (the evaluator's overall loss) first, then the other losses ("ppl/news/loss"),
  // then the rest ("ppl/news/ppl", "acc/...").
  auto rank = [](const std::string& k) { return ends_loss(k) ? (std::count(k.begin(), k.end(), '/') == 1 ? 0 : 1) : 2; };
  std::stable_sort(val.begin(), val.end(), [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
  // The main charts: the validation losses (all validation metrics when none is a loss) and the
  // training losses; the other validation metrics are folded with the rest.
  const bool any_loss = std::any_of(val.begin(), val.end(), ends_loss);
  for (const auto& m : val) (any_loss && !ends_loss(m) ? out.more_validation : out.validation).push_back(m);
  return out;
}

std::string main_metric(const std::vector<Run>& runs, const Metrics& ms, const std::string& wanted) {
  if (!wanted.empty()) return wanted;
  for (const auto& r : runs)
    for (const auto& row : r.rows)
      if (row.has("ppl/loss")) return "ppl/loss";
  return ms.validation.empty() ? "loss" : ms.validation.front();
}

Final final_of(const Run& r, const std::string& m) {
  Final f;
  for (const auto& row : r.rows)
    if (row.has(m) && std::isfinite(row.get(m))) f = {row.get(m), row.get("step"), row.get("flops")};
  return f;
}

Best best_of(const Run& r, const std::string& m) {
  Best b;
  const bool hi = higher_is_better(m);
  for (const auto& row : r.rows) {
    const double v = row.get(m);
    if (!std::isfinite(v)) continue;
    if (std::isnan(b.value) || (hi ? v > b.value : v < b.value)) b = {v, row.get("step")};
  }
  return b;
}

double last_of(const Run& r, const std::string& k) {
  double v = NAN;
  for (const auto& row : r.rows)
    if (std::isfinite(row.get(k))) v = row.get(k);
  return v;
}

double max_of(const Run& r, const std::string& k) {
  double v = NAN;
  for (const auto& row : r.rows)
    if (std::isfinite(row.get(k))) v = std::isnan(v) ? row.get(k) : std::max(v, row.get(k));
  return v;
}

double mean_of(const Run& r, const std::string& k) {
  double s = 0;
  int n = 0;
  for (const auto& row : r.rows)
    if (std::isfinite(row.get(k))) s += row.get(k), ++n;
  return n ? s / n : NAN;
}

std::vector<std::string> stages_of(const Run& r) {
  std::vector<std::string> s;
  for (const auto& row : r.rows)
    if (!row.stage.empty() && std::find(s.begin(), s.end(), row.stage) == s.end()) s.push_back(row.stage);
  return s;
}

std::vector<std::string> differing_keys(const std::vector<Run>& runs) {
  std::set<std::string> keys;
  int with_graph = 0;
  for (const auto& r : runs) {
    if (r.graph.empty()) continue;
    ++with_graph;
    for (const auto& [k, v] : r.graph) keys.insert(k);
  }
  std::vector<std::string> out;
  if (with_graph < 2) return out;
  for (const auto& k : keys) {
    if (k == "run.name" || k == "run.out") continue;
    std::set<std::string> vals;
    for (const auto& r : runs) {
      if (r.graph.empty()) continue;
      auto i = r.graph.find(k);
      vals.insert(i == r.graph.end() ? std::string("(unset)") : i->second);
    }
    if (vals.size() > 1) out.push_back(k);
  }
  return out;
}

}  // namespace scion::report
