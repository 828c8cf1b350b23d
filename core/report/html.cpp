#include "report/html.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

#include "report/axes.h"
#include "report/format.h"
#include "report/page_assets.h"
#include "report/page_data.h"

namespace scion::report {

namespace {

std::string wall(double s) {
  if (!std::isfinite(s)) return "";
  char buf[40];
  if (s < 120) std::snprintf(buf, sizeof buf, "%.0f s", s);
  else if (s < 7200) std::snprintf(buf, sizeof buf, "%.1f min", s / 60);
  else std::snprintf(buf, sizeof buf, "%.1f h", s / 3600);
  return buf;
}

// The runs read, with the lines each had, its values that were not finite and its lines skipped.
std::string runs_note(const std::vector<Run>& runs) {
  std::ostringstream o;
  o << "<p class=\"note\" id=\"runs\">";
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& r = runs[i];
    o << (i ? "; " : "") << esc(r.name) << " (" << r.rows.size() << " lines";
    if (r.non_finite) o << ", " << r.non_finite << " values not finite, left as gaps";
    if (!r.malformed.empty()) {
      o << ", " << r.malformed.size() << " malformed line" << (r.malformed.size() > 1 ? "s" : "") << " skipped (";
      for (size_t k = 0; k < r.malformed.size() && k < 5; ++k) o << (k ? ", " : "") << r.malformed[k];
      o << (r.malformed.size() > 5 ? ", …" : "") << ")";
    }
    o << ")";
  }
  o << "</p>";
  return o.str();
}

// ---- the summary table ----

struct Column {
  std::string head;
  bool lower;                     // lower values are better
  std::vector<double> v;          // per run: the value ranked (NaN: not ranked)
  std::vector<std::string> text;  // per run: the cell
};

std::string at_step(double value, double step) {
  return std::isnan(value) ? "" : num(value) + " <small>@" + num(step, 10) + "</small>";
}

// The main validation metric: final and best (with their steps); the other validation losses: final.
std::vector<Column> validation_columns(const std::vector<Run>& runs, const Metrics& ms, const std::string& metric) {
  std::vector<std::string> vm = {metric};
  for (const auto& m : ms.validation)
    if (m != metric) vm.push_back(m);
  std::vector<Column> cols;
  for (const auto& m : vm) {
    if (!is_validation(m)) continue;
    Column fin{"final " + m, !higher_is_better(m), {}, {}}, best{"best " + m, !higher_is_better(m), {}, {}};
    for (const auto& r : runs) {
      const Final f = final_of(r, m);
      const Best b = best_of(r, m);
      fin.v.push_back(f.value), fin.text.push_back(at_step(f.value, f.step));
      best.v.push_back(b.value), best.text.push_back(at_step(b.value, b.step));
    }
    cols.push_back(fin);
    if (m == metric) cols.push_back(best);
  }
  return cols;
}

// The final training loss and tokens/s, ranked; tokens, FLOPs and wall time are the budget, not
// a result: shown, not ranked. A column no run has (no training loss logged) is left out.
std::vector<Column> training_columns(const std::vector<Run>& runs) {
  Column loss{"final train loss", true, {}, {}}, tok{"tokens", false, {}, {}}, fl{"FLOPs", false, {}, {}},
      tps{"tokens/s", false, {}, {}}, el{"wall time", true, {}, {}};
  auto si_or_empty = [](double v) { return std::isnan(v) ? std::string() : si(v); };
  for (const auto& r : runs) {
    const double l = last_of(r, "loss"), t = max_of(r, "tokens"), f = max_of(r, "flops"), s = mean_of(r, "tokens_per_s");
    loss.v.push_back(l), loss.text.push_back(std::isnan(l) ? "" : num(l));
    tok.v.push_back(NAN), tok.text.push_back(si_or_empty(t));
    fl.v.push_back(NAN), fl.text.push_back(si_or_empty(f));
    tps.v.push_back(s), tps.text.push_back(si_or_empty(s));
    el.v.push_back(NAN), el.text.push_back(wall(last_of(r, "elapsed_s")));
  }
  std::vector<Column> cols;
  for (Column* c : {&loss, &tok, &fl, &tps, &el})
    if (std::any_of(c->text.begin(), c->text.end(), [](const std::string& t) { return !t.empty(); })) cols.push_back(*c);
  return cols;
}

// Whether run i has the best value of the column among the compared runs: the baselines (other
// budgets) are not ranked unless every run is one.
bool is_best(const Column& c, const std::vector<Run>& runs, size_t i) {
  const bool all_base = std::all_of(runs.begin(), runs.end(), [](const Run& r) { return r.baseline; });
  if (std::isnan(c.v[i]) || runs.size() < 2 || (!all_base && runs[i].baseline)) return false;
  for (size_t j = 0; j < runs.size(); ++j)
    if (!std::isnan(c.v[j]) && (all_base || !runs[j].baseline) && (c.lower ? c.v[j] < c.v[i] : c.v[j] > c.v[i]))
      return false;
  return true;
}

std::string summary_head(const std::vector<Column>& cols, bool diff) {
  std::ostringstream o;
  o << "<div class=\"scroll\"><table id=\"summary\"><thead><tr><th>run</th>";
  for (const auto& c : cols) {
    std::string h = esc(c.head);  // long metric names break after a slash
    for (size_t p = h.find('/'); p != std::string::npos; p = h.find('/', p + 6)) h.insert(p + 1, "<wbr>");
    o << "<th>" << h << "</th>";
  }
  o << "<th>stages</th>" << (diff ? "<th>differs in</th>" : "") << "</tr></thead><tbody>";
  return o.str();
}

std::string summary_row(const std::vector<Run>& runs, size_t i, const std::vector<Column>& cols,
                        const std::vector<std::string>& diff) {
  const Run& r = runs[i];
  std::ostringstream o;
  o << "<tr data-run=\"" << esc(r.name) << "\"><td><span class=\"sw\" style=\"background:" << r.color << "\"></span>"
    << esc(r.name) << (r.baseline ? " <small>(baseline)</small>" : "") << "</td>";
  for (const auto& c : cols) {
    o << "<td" << (is_best(c, runs, i) ? " class=\"best\"" : "");
    if (!std::isnan(c.v[i])) o << " data-v=\"" << exact(c.v[i]) << "\"";
    o << ">" << c.text[i] << "</td>";
  }
  std::string st;
  for (const auto& s : stages_of(r)) st += (st.empty() ? "" : ", ") + s;
  o << "<td>" << esc(st) << "</td>";
  if (!diff.empty()) {
    std::string dv;
    for (const auto& k : diff) {
      auto it = r.graph.find(k);
      dv += (dv.empty() ? "" : "; ") + k + " = " + (it == r.graph.end() ? "(unset)" : it->second);
    }
    o << "<td class=\"diff\">" << esc(dv) << "</td>";
  }
  o << "</tr>";
  return o.str();
}

std::string summary_html(const std::vector<Run>& runs, const Metrics& ms, const std::string& metric) {
  std::vector<Column> cols = validation_columns(runs, ms, metric);
  for (auto& c : training_columns(runs)) cols.push_back(std::move(c));
  const std::vector<std::string> diff = differing_keys(runs);
  std::string o = summary_head(cols, !diff.empty());
  for (size_t i = 0; i < runs.size(); ++i) o += summary_row(runs, i, cols, diff);
  return o + "</tbody></table></div>";
}

// ---- the compute saved ----

std::string savings_by_label(const std::vector<LabelRow>& rows) {
  std::ostringstream o;
  o << "<table id=\"savings\"><thead><tr><th>run</th><th>runs</th><th>final − baseline's (equal compute)</th>"
    << "<th>compute-equivalent saving</th><th>first crossing: steps saved</th><th>first crossing: FLOPs saved</th>"
    << "</tr></thead><tbody>";
  for (const auto& r : rows) {
    o << "<tr data-label=\"" << esc(r.label) << "\"><td>" << esc(r.label) << "</td><td>" << r.n << "</td><td data-v=\""
      << exact(r.delta.mean) << "\">" << agg_text(r.delta, false) << "</td><td data-v=\"" << exact(r.equiv.mean) << "\">"
      << esc(r.bounds) << agg_text(r.equiv, true) << "</td><td data-v=\"" << exact(r.steps.mean) << "\">"
      << agg_text(r.steps, true) << r.crossed_note() << "</td><td data-v=\"" << exact(r.flops.mean) << "\">"
      << agg_text(r.flops, true) << "</td></tr>";
  }
  o << "</tbody></table>";
  return o.str();
}

std::string savings_per_run(const std::vector<Saving>& ss) {
  std::ostringstream o;
  o << "<details><summary>per run</summary><table><thead><tr><th>run</th><th>final</th>"
    << "<th>FLOPs</th><th>equal-compute baseline</th><th>compute-equivalent saving</th><th>steps saved</th>"
    << "<th>FLOPs saved</th></tr></thead><tbody>";
  for (const auto& s : ss)
    o << "<tr><td>" << esc(s.run) << "</td><td>" << num(s.final) << "</td><td>" << si(s.final_flops) << "</td><td>"
      << esc(s.reference) << "</td><td>" << esc(s.bound) << pct(s.equiv) << "</td><td>"
      << (s.crossed ? pct(s.steps_saved) : "never crosses") << "</td><td>" << (s.crossed ? pct(s.flops_saved) : "—")
      << "</td></tr>";
  o << "</tbody></table></details>";
  return o.str();
}

std::string savings_html(const PageInput& in) {
  std::string bnames;
  for (const auto& r : in.runs)
    if (r.baseline) bnames += (bnames.empty() ? "" : ", ") + r.name;
  std::ostringstream o;
  o << "<h2>Compute saved</h2><p class=\"note\">Against the from-scratch family " << esc(bnames) << ", by final "
    << esc(in.metric) << ". <b>Compute-equivalent saving</b>: 1 − the run's FLOPs / the FLOPs a baseline needs to end at "
    << "the same value (interpolated in log FLOPs between the baselines' budgets; &lt; or &gt; when outside them). "
    << "<b>First crossing</b>: the first evaluation at or past the equal-compute baseline's final value, in steps and "
    << "FLOPs, against those the baseline took to first reach it. Several runs under one name: mean (min … max).</p>";
  return o.str() + savings_by_label(in.by_label) + savings_per_run(in.savings);
}

// ---- the charts ----

std::string charts_html(const std::vector<Run>& runs, const Metrics& ms) {
  std::ostringstream o;
  o << "<h2>Charts</h2><div id=\"controls\">smoothing (training curves) <input id=\"smooth\" type=\"range\" min=\"0\" "
    << "max=\"0.99\" step=\"0.01\" value=\"0\"> <span id=\"smooth-v\">0</span></div><div id=\"legend\"></div>"
    << "<div id=\"charts\"></div><details id=\"more\"><summary>other metrics</summary><div id=\"charts-other\"></div>"
    << "</details><div id=\"tip\"></div><script id=\"data\" type=\"application/json\">" << page_data(runs, ms)
    << "</script><script>" << kReportJs << "</script>";
  return o.str();
}

}  // namespace

std::string html_page(const PageInput& in) {
  std::ostringstream o;
  o << "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Scion report</title><style>" << kReportCss
    << "</style></head><body><h1>Scion report</h1>" << runs_note(in.runs) << "<h2>Summary</h2>"
    << summary_html(in.runs, in.ms, in.metric);
  if (in.baseline) o << savings_html(in);
  o << charts_html(in.runs, in.ms) << "</body></html>\n";
  return o.str();
}

}  // namespace scion::report
