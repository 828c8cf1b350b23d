#include "scion/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <toml++/toml.h>

#include "scion/error.h"
#include "scion/files.h"
#include "scion/json.h"

#include "report_js.h"

namespace scion::report {

namespace fs = std::filesystem;

namespace {

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
                         "#bcbd22", "#7f7f7f"};
const int kNColors = 10;

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

std::string num(double v, int digits = 4) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

std::string exact(double v) { return std::isfinite(v) ? Json(v).dump() : "null"; }  // shortest exact form

std::string pct(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100 * v);
  return buf;
}

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
  std::string dir, name, label, color;
  std::vector<Row> rows;
  int non_finite = 0;            // NaN / Infinity values (a diverged step): gaps in the curves
  std::vector<int> malformed;    // line numbers that are not a JSON object: skipped
  std::map<std::string, std::string> graph;  // the resolved graph.toml, flattened to dotted keys
  bool baseline = false;
};

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

Run read_run(const std::string& dir) {
  const fs::path p = fs::path(dir) / "metrics.jsonl";
  std::ifstream in(p);
  SCION_CHECK(in.good(), "report: '", p.string(), "' does not exist (is '", dir, "' a run directory?)");
  Run r;
  r.dir = dir;
  r.label = fs::path(dir).lexically_normal().filename().string();
  if (r.label.empty()) r.label = fs::path(dir).lexically_normal().parent_path().filename().string();
  r.name = r.label;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    Json j;
    try {
      j = json_parse(line, p.string() + ":" + std::to_string(n));
    } catch (const Error&) {
      r.malformed.push_back(n);  // a torn or hand-edited line: skipped and counted, never a refusal
      continue;
    }
    if (!j.is_object()) {
      r.malformed.push_back(n);
      continue;
    }
    Row row;
    for (const auto& [k, v] : json_object(j)) {
      if (v.is_number()) {
        row.v[k] = json_number(v);
        if (!std::isfinite(row.v[k])) ++r.non_finite;
      } else if (v.is_null()) {  // how the executor writes a value that was not finite
        row.v[k] = NAN;
        ++r.non_finite;
      } else if (k == "stage" && v.is_string()) {
        row.stage = json_string(v);
      }
    }
    if (!row.has("step")) {
      r.malformed.push_back(n);
      continue;
    }
    r.rows.push_back(std::move(row));
  }
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
bool is_validation(const std::string& k) { return k.find('/') != std::string::npos; }
bool higher_is_better(const std::string& k) {
  return k.find("acc") != std::string::npos || k.find("bleu") != std::string::npos || k.find("score") != std::string::npos;
}
bool log_y_for(const std::string& m) { return m.find("ppl") != std::string::npos && m.find("loss") == std::string::npos; }

// Validation metrics first (the "*/loss" ones leading), then the losses, then the others.
struct Metrics {
  std::vector<std::string> validation, loss, more_validation, other;
  std::vector<std::string> all() const {
    std::vector<std::string> a = validation;
    a.insert(a.end(), loss.begin(), loss.end());
    a.insert(a.end(), more_validation.begin(), more_validation.end());
    a.insert(a.end(), other.begin(), other.end());
    return a;
  }
};

Metrics classify(const std::vector<Run>& runs, const std::vector<std::string>& only) {
  std::set<std::string> names;
  for (const auto& r : runs)
    for (const auto& row : r.rows)
      for (const auto& [k, v] : row.v)
        if (!is_axis(k) && !is_schedule(k)) names.insert(k);
  for (const auto& m : only) {
    SCION_CHECK(!is_axis(m) && !is_schedule(m), "report: '", m, "' is an x axis or a schedule, not a result to chart");
    SCION_CHECK(names.count(m), "report: no run has metric '", m, "' (hint: the metrics are the keys of metrics.jsonl, ",
                "e.g. loss, ppl/loss)");
  }
  Metrics out;
  // "ppl/loss" (the evaluator's overall loss) first, then the other losses ("ppl/news/loss"),
  // then the rest ("ppl/news/ppl", "acc/...").
  auto ends_loss = [](const std::string& k) { return k.size() >= 4 && k.compare(k.size() - 4, 4, "loss") == 0; };
  auto rank = [&](const std::string& k) {
    return ends_loss(k) ? (std::count(k.begin(), k.end(), '/') == 1 ? 0 : 1) : 2;
  };
  std::vector<std::string> val;
  for (const auto& m : names) {
    if (!only.empty() && std::find(only.begin(), only.end(), m) == only.end()) continue;
    if (is_validation(m)) val.push_back(m);
    else if (m == "loss") out.loss.insert(out.loss.begin(), m);
    else if (m.find("loss") != std::string::npos) out.loss.push_back(m);
    else out.other.push_back(m);
  }
  std::stable_sort(val.begin(), val.end(), [&](const auto& a, const auto& b) { return rank(a) < rank(b); });
  // The main charts: the validation losses (all validation metrics when none is a loss) and the
  // training losses; the other validation metrics are folded with the rest.
  const bool any_loss = std::any_of(val.begin(), val.end(), ends_loss);
  for (const auto& m : val) (any_loss && !ends_loss(m) ? out.more_validation : out.validation).push_back(m);
  return out;
}

// Per-run figures of the summary table.
struct Final {
  double value = NAN, step = NAN, flops = NAN;
};
struct Best {
  double value = NAN, step = NAN;
};

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

std::string wall(double s) {
  if (!std::isfinite(s)) return "";
  char buf[40];
  if (s < 120) std::snprintf(buf, sizeof buf, "%.0f s", s);
  else if (s < 7200) std::snprintf(buf, sizeof buf, "%.1f min", s / 60);
  else std::snprintf(buf, sizeof buf, "%.1f h", s / 3600);
  return buf;
}

// ---- compute saved against a family of from-scratch runs (bench/experiments/compare.py) ----

struct Saving {
  std::string run, label, reference;
  double final = NAN, final_flops = NAN, delta = NAN, equiv = NAN, steps_saved = NAN, flops_saved = NAN;
  std::string bound;  // "<" or ">" when the final loss lies outside the baselines' range
  bool crossed = false;
};

std::vector<Saving> savings(const std::vector<Run>& runs, const std::string& metric) {
  std::vector<Saving> out;
  std::vector<const Run*> base;
  for (const auto& r : runs)
    if (r.baseline) base.push_back(&r);
  if (base.empty()) return out;
  for (const auto& r : runs) {
    if (r.baseline) continue;
    const Final f = final_of(r, metric);
    if (std::isnan(f.value) || !(f.flops > 0)) continue;
    // The family: the baselines next to this run (one seed's folder), or all of them.
    std::vector<const Run*> fam;
    const fs::path parent = fs::path(r.dir).lexically_normal().parent_path();
    for (const Run* b : base)
      if (fs::path(b->dir).lexically_normal().parent_path() == parent) fam.push_back(b);
    if (fam.empty()) fam = base;
    std::vector<std::pair<double, double>> curve;  // (final FLOPs, final value) of each budget
    const Run* ref = nullptr;
    double ref_dist = INFINITY;
    for (const Run* b : fam) {
      const Final bf = final_of(*b, metric);
      if (std::isnan(bf.value) || !(bf.flops > 0)) continue;
      curve.push_back({bf.flops, bf.value});
      const double d = std::fabs(std::log(bf.flops / f.flops));
      if (d < ref_dist) ref_dist = d, ref = b;
    }
    if (!ref) continue;
    std::sort(curve.begin(), curve.end());
    Saving s;
    s.run = r.name, s.label = r.label, s.reference = ref->name, s.final = f.value, s.final_flops = f.flops;
    const bool hi = higher_is_better(metric);
    const Final rf = final_of(*ref, metric);
    s.delta = f.value - rf.value;
    // Baseline FLOPs needed to end at the run's final value, interpolated in log FLOPs.
    double need = NAN;
    for (size_t i = 0; i + 1 < curve.size() && std::isnan(need); ++i) {
      const auto [f0, l0] = curve[i];
      const auto [f1, l1] = curve[i + 1];
      if (std::min(l0, l1) <= f.value && f.value <= std::max(l0, l1) && l0 != l1) {
        const double t = (f.value - l0) / (l1 - l0);
        need = std::exp(std::log(f0) + t * (std::log(f1) - std::log(f0)));
      }
    }
    if (std::isnan(need)) {
      double best = curve[0].second;
      for (const auto& c : curve) best = hi ? std::max(best, c.second) : std::min(best, c.second);
      const bool better = hi ? f.value > best : f.value < best;
      if (curve.size() == 1 && f.value == best) need = curve[0].first;
      else if (better) need = curve.back().first, s.bound = ">";  // better than the largest budget
      else need = curve.front().first, s.bound = "<";
    }
    s.equiv = 1 - f.flops / need;
    // First crossing: the first evaluation at or past the reference's final value, against the
    // first evaluation at which the reference itself reached it.
    auto reach = [&](const Run& x, double target, double* step, double* flops) {
      for (const auto& row : x.rows) {
        const double v = row.get(metric);
        if (std::isfinite(v) && (hi ? v >= target : v <= target)) {
          *step = row.get("step"), *flops = row.get("flops");
          return true;
        }
      }
      return false;
    };
    double rs = NAN, rfl = NAN, bs = NAN, bfl = NAN;
    if (reach(r, rf.value, &rs, &rfl) && reach(*ref, rf.value, &bs, &bfl)) {
      s.crossed = true;
      s.steps_saved = 1 - rs / bs;
      s.flops_saved = 1 - rfl / bfl;
    }
    out.push_back(s);
  }
  return out;
}

struct Agg {
  double mean = NAN, min = NAN, max = NAN;
  int n = 0;
};
Agg agg(const std::vector<double>& xs) {
  Agg a;
  double s = 0;
  for (double x : xs) {
    if (!std::isfinite(x)) continue;
    a.min = a.n ? std::min(a.min, x) : x;
    a.max = a.n ? std::max(a.max, x) : x;
    s += x, ++a.n;
  }
  if (a.n) a.mean = s / a.n;
  return a;
}

std::string agg_text(const Agg& a, bool percent) {
  if (!a.n) return "—";
  auto f = [&](double x) {
    if (percent) return pct(x);
    char buf[40];
    std::snprintf(buf, sizeof buf, "%+.3f", x);
    return std::string(buf);
  };
  return a.n > 1 ? f(a.mean) + " (" + f(a.min) + " … " + f(a.max) + ")" : f(a.mean);
}

struct LabelRow {
  std::string label;
  int n = 0, crossed = 0;
  Agg delta, equiv, steps, flops;
  std::string bounds;
};

std::vector<LabelRow> by_label(const std::vector<Saving>& ss) {
  std::vector<LabelRow> out;
  std::vector<std::string> order;
  for (const auto& s : ss)
    if (std::find(order.begin(), order.end(), s.label) == order.end()) order.push_back(s.label);
  for (const auto& l : order) {
    LabelRow lr;
    lr.label = l;
    std::vector<double> d, e, st, fl;
    std::set<std::string> b;
    for (const auto& s : ss) {
      if (s.label != l) continue;
      ++lr.n, lr.crossed += s.crossed;
      d.push_back(s.delta), e.push_back(s.equiv), st.push_back(s.steps_saved), fl.push_back(s.flops_saved);
      if (!s.bound.empty()) b.insert(s.bound);
    }
    for (const auto& x : b) lr.bounds += x;
    lr.delta = agg(d), lr.equiv = agg(e), lr.steps = agg(st), lr.flops = agg(fl);
    out.push_back(lr);
  }
  return out;
}

std::string savings_markdown(const std::vector<LabelRow>& rows, const std::string& metric) {
  std::ostringstream o;
  o << "| run | runs | final " << metric << " − baseline's, equal compute | compute-equivalent saving | "
    << "first crossing: steps saved | first crossing: FLOPs saved |\n|---|---|---|---|---|---|\n";
  for (const auto& r : rows) {
    const std::string note = r.bounds.empty() ? "" : " (" + r.bounds + " bound)";
    const std::string cn = r.crossed == r.n ? "" : " (" + std::to_string(r.crossed) + "/" + std::to_string(r.n) + " cross)";
    o << "| " << r.label << " | " << r.n << " | " << agg_text(r.delta, false) << " | " << agg_text(r.equiv, true) << note
      << " | " << agg_text(r.steps, true) << cn << " | " << agg_text(r.flops, true) << " |\n";
  }
  return o.str();
}

// The graph keys in which the runs differ (run.name, the run's own folder, left out).
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

}  // namespace

// ---- axis rules ----

std::vector<double> nice_ticks(double lo, double hi, bool log_scale) {
  std::vector<double> t;
  if (!(hi >= lo) || !std::isfinite(lo) || !std::isfinite(hi)) return t;
  if (log_scale && lo > 0) {
    const int e0 = int(std::floor(std::log10(lo) + 1e-9)), e1 = int(std::ceil(std::log10(hi) - 1e-9));
    const int decades = e1 - e0;
    for (const double m : decades <= 2 ? std::vector<double>{1, 2, 5} : decades <= 3 ? std::vector<double>{1, 3}
                                                                                      : std::vector<double>{1})
      for (int e = e0; e <= e1; ++e) {
        const double v = m * std::pow(10.0, e);
        if (v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9)) t.push_back(v);
      }
    std::sort(t.begin(), t.end());
    if (decades > 6) {  // thin out: at most ~7 labels
      std::vector<double> thin;
      const size_t every = (t.size() + 6) / 7;
      for (size_t i = 0; i < t.size(); i += every) thin.push_back(t[i]);
      t = thin;
    }
    if (t.size() >= 3) return t;
    t.clear();  // about a decade or less, too few round values: linear ticks on the log axis
  }
  if (hi == lo) return {lo};
  const double raw = (hi - lo) / 5, mag = std::pow(10.0, std::floor(std::log10(raw))), r = raw / mag;
  const double step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
  // Ticks by index, not by adding step up to hi: when the range is below the values'
  // precision (lo = 1e17, hi = 1e17 + 16) v += step would never move and the loop never end.
  const double k0 = std::ceil(lo / step - 1e-9), k1 = std::floor(hi / step + 1e-9);
  if (!(k1 - k0 >= 0 && k1 - k0 <= 20) || k0 * step == (k0 + 1) * step) return {lo, hi};
  const int n = int(k1 - k0);  // at most 21 ticks, counted by an int: k0 + i may not move when k0 is huge
  for (int i = 0; i <= n; ++i) {
    const double v = (k0 + double(i)) * step;
    t.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  }
  return t;
}

std::string si(double v) {
  if (!std::isfinite(v)) return std::isnan(v) ? "NaN" : (v > 0 ? "∞" : "-∞");
  static const char* suffix[] = {"", "k", "M", "G", "T", "P", "E"};
  int k = 0;
  double a = std::fabs(v);
  while (a >= 1000 && k < 6) a /= 1000, v /= 1000, ++k;
  char buf[40];
  if (k == 0 && a != 0 && a < 1e-3) std::snprintf(buf, sizeof buf, "%.3g", v);
  else std::snprintf(buf, sizeof buf, "%.4g", v);
  return std::string(buf) + suffix[k];
}

std::string svg_chart(const std::string& title, const std::string& x_label, const std::vector<Series>& series,
                      bool log_y, bool log_x) {
  const double W = 560, H = 320, L = 60, R = 150, T = 30, B = 45;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  auto ok = [&](double x, double y) {
    return std::isfinite(x) && std::isfinite(y) && !(log_y && y <= 0) && !(log_x && x <= 0);
  };
  for (const auto& s : series)
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!ok(s.x[i], s.y[i])) continue;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, s.y[i]), y1 = std::max(y1, s.y[i]);
    }
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H
    << "\" font-family=\"sans-serif\" font-size=\"11\">";
  o << "<text x=\"" << L << "\" y=\"18\" font-size=\"13\" font-weight=\"bold\">" << esc(title) << "</text>";
  if (!(x1 >= x0) || !(y1 >= y0)) {
    o << "<text x=\"" << L << "\" y=\"" << H / 2 << "\">no data</text></svg>";
    return o.str();
  }
  auto tf = [](double v, bool lg) { return lg ? std::log10(v) : v; };
  double X0 = tf(x0, log_x), X1 = tf(x1, log_x), Y0 = tf(y0, log_y), Y1 = tf(y1, log_y);
  if (X1 == X0) X0 -= 0.5, X1 += 0.5;
  if (Y1 == Y0) Y0 -= 0.5, Y1 += 0.5;
  const double pad = 0.05 * (Y1 - Y0);
  Y0 -= pad, Y1 += pad;
  auto px = [&](double x) { return L + (tf(x, log_x) - X0) / (X1 - X0) * (W - L - R); };
  auto py = [&](double y) { return T + (1 - (tf(y, log_y) - Y0) / (Y1 - Y0)) * (H - T - B); };
  auto inv = [](double v, bool lg) { return lg ? std::pow(10.0, v) : v; };
  o << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << W - L - R << "\" height=\"" << H - T - B
    << "\" fill=\"none\" stroke=\"#999\"/>";
  for (double v : nice_ticks(inv(X0, log_x), inv(X1, log_x), log_x)) {
    const double x = px(v);
    o << "<line x1=\"" << x << "\" x2=\"" << x << "\" y1=\"" << T << "\" y2=\"" << H - B << "\" stroke=\"#eee\"/>";
    o << "<text x=\"" << x << "\" y=\"" << H - B + 15 << "\" text-anchor=\"middle\">" << si(v) << "</text>";
  }
  for (double v : nice_ticks(inv(Y0, log_y), inv(Y1, log_y), log_y)) {
    const double y = py(v);
    o << "<line x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << y << "\" y2=\"" << y << "\" stroke=\"#eee\"/>";
    o << "<text x=\"" << L - 5 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">" << si(v) << "</text>";
  }
  o << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 8 << "\" text-anchor=\"middle\">" << esc(x_label)
    << (log_x ? " (log)" : "") << "</text>";
  // Stage boundaries, as the page draws them: a dashed line and the new stage's name.
  std::set<double> marked;
  for (const auto& s : series)
    for (const auto& [x, name] : s.stages) {
      if (!std::isfinite(x) || (log_x && x <= 0) || x < x0 || x > x1 || !marked.insert(x).second) continue;
      o << "<line class=\"stage\" x1=\"" << px(x) << "\" x2=\"" << px(x) << "\" y1=\"" << T << "\" y2=\"" << H - B
        << "\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>";
      o << "<text x=\"" << px(x) + 3 << "\" y=\"" << T + 11 << "\" fill=\"#777\">" << esc(name) << "</text>";
    }
  for (size_t si_ = 0; si_ < series.size(); ++si_) {
    const auto& s = series[si_];
    const char* color = kColors[si_ % kNColors];
    // A value that is not finite (or not positive on a log axis) breaks the line: a gap, not a
    // segment drawn across it; the legend counts the non-finite ones. A lone point is a dot.
    std::vector<std::pair<double, double>> piece;
    int non_finite = 0;
    auto flush = [&] {
      if (piece.size() == 1)
        o << "<circle cx=\"" << piece[0].first << "\" cy=\"" << piece[0].second << "\" r=\"3\" fill=\"" << color << "\"/>";
      else if (piece.size() > 1) {
        o << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"1.6\" points=\"";
        for (const auto& [x, y] : piece) o << x << "," << y << " ";
        o << "\"/>";
      }
      piece.clear();
    };
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (ok(s.x[i], s.y[i])) piece.push_back({px(s.x[i]), py(s.y[i])});
      else non_finite += !std::isfinite(s.y[i]), flush();
    }
    flush();
    o << "<rect x=\"" << W - R + 10 << "\" y=\"" << T + 16 * si_ << "\" width=\"10\" height=\"10\" fill=\"" << color
      << "\"/>";
    o << "<text x=\"" << W - R + 25 << "\" y=\"" << T + 16 * si_ + 9 << "\">" << esc(s.run)
      << (non_finite ? " (" + std::to_string(non_finite) + " not finite)" : "") << "</text>";
  }
  o << "</svg>";
  return o.str();
}

namespace {

Json num_json(double v) { return std::isfinite(v) ? Json(v) : Json(); }

// The data the page's script draws: per run, per metric, the points (step, tokens, flops, y).
std::string page_data(const std::vector<Run>& runs, const Metrics& ms) {
  Json d = Json::object();
  d["validation"] = Json(ms.validation);
  d["loss"] = Json(ms.loss);
  std::vector<std::string> other = ms.more_validation;
  other.insert(other.end(), ms.other.begin(), ms.other.end());
  d["other"] = Json(other);
  Json rs = Json::array();
  for (const auto& r : runs) {
    Json jr = Json::object();
    jr["name"] = r.name;
    jr["color"] = r.color;
    Json series = Json::object();
    for (const auto& m : ms.all()) {
      Json pts = Json::array();
      for (const auto& row : r.rows)
        if (row.has(m))
          pts.push_back(Json::array({num_json(row.get("step")), num_json(row.get("tokens")), num_json(row.get("flops")),
                                     num_json(row.get(m))}));
      if (!pts.empty()) series[m] = pts;
    }
    jr["series"] = series;
    Json stages = Json::array();  // where a new stage starts: (step, tokens, flops, name)
    std::string last;
    for (const auto& row : r.rows) {
      if (row.stage.empty() || row.stage == last) continue;
      if (!last.empty())
        stages.push_back(Json::array({num_json(row.get("step")), num_json(row.get("tokens")),
                                      num_json(row.get("flops")), row.stage}));
      last = row.stage;
    }
    jr["stages"] = stages;
    rs.push_back(jr);
  }
  d["runs"] = rs;
  std::string s = d.dump();
  for (size_t p = s.find("</"); p != std::string::npos; p = s.find("</", p)) s.replace(p, 2, "<\\/");
  return s;
}

std::string summary_html(const std::vector<Run>& runs, const Metrics& ms, const std::string& metric,
                         const std::vector<std::string>& diff) {
  std::ostringstream o;
  struct Col {
    std::string head, key;
    bool lower;
    std::vector<double> v;
    std::vector<std::string> text;
  };
  std::vector<Col> cols;
  // The main validation metric: final and best (with their steps); the other validation losses: final.
  std::vector<std::string> vm = {metric};
  for (const auto& m : ms.validation)
    if (m != metric) vm.push_back(m);
  for (const auto& m : vm) {
    if (!is_validation(m)) continue;
    Col fin{"final " + m, m, !higher_is_better(m), {}, {}}, best{"best " + m, m, !higher_is_better(m), {}, {}};
    for (const auto& r : runs) {
      const Final f = final_of(r, m);
      const Best b = best_of(r, m);
      fin.v.push_back(f.value), best.v.push_back(b.value);
      fin.text.push_back(std::isnan(f.value) ? "" : num(f.value) + " <small>@" + num(f.step, 10) + "</small>");
      best.text.push_back(std::isnan(b.value) ? "" : num(b.value) + " <small>@" + num(b.step, 10) + "</small>");
    }
    cols.push_back(fin);
    if (m == metric) cols.push_back(best);
  }
  // tokens, FLOPs and wall time are the budget, not a result: shown, not ranked (no value).
  Col loss{"final train loss", "loss", true, {}, {}}, tok{"tokens", "tokens", false, {}, {}},
      fl{"FLOPs", "flops", false, {}, {}}, tps{"tokens/s", "tokens_per_s", false, {}, {}},
      el{"wall time", "elapsed_s", true, {}, {}};
  for (const auto& r : runs) {
    const double l = last_of(r, "loss"), t = max_of(r, "tokens"), f = max_of(r, "flops"), s = mean_of(r, "tokens_per_s"),
                 e = last_of(r, "elapsed_s");
    loss.v.push_back(l), loss.text.push_back(std::isnan(l) ? "" : num(l));
    tok.v.push_back(NAN), tok.text.push_back(std::isnan(t) ? "" : si(t));
    fl.v.push_back(NAN), fl.text.push_back(std::isnan(f) ? "" : si(f));
    tps.v.push_back(s), tps.text.push_back(std::isnan(s) ? "" : si(s));
    el.v.push_back(NAN), el.text.push_back(wall(e));
    // tokens/FLOPs/wall time are the budget, not a result: shown, not ranked
  }
  tps.lower = false;
  for (Col* c : {&loss, &tok, &fl, &tps, &el})  // a column no run has (no training loss logged) is left out
    if (std::any_of(c->text.begin(), c->text.end(), [](const std::string& t) { return !t.empty(); })) cols.push_back(*c);
  // The best of a column among the compared runs: the baselines (other budgets) are not ranked
  // unless every run is one.
  const bool all_base = std::all_of(runs.begin(), runs.end(), [](const Run& r) { return r.baseline; });
  o << "<div class=\"scroll\"><table id=\"summary\"><thead><tr><th>run</th>";
  for (const auto& c : cols) {
    std::string h = esc(c.head);  // long metric names break after a slash
    for (size_t p = h.find('/'); p != std::string::npos; p = h.find('/', p + 6)) h.insert(p + 1, "<wbr>");
    o << "<th>" << h << "</th>";
  }
  o << "<th>stages</th>" << (diff.empty() ? "" : "<th>differs in</th>") << "</tr></thead><tbody>";
  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& r = runs[i];
    o << "<tr data-run=\"" << esc(r.name) << "\"><td><span class=\"sw\" style=\"background:" << r.color << "\"></span>"
      << esc(r.name) << (r.baseline ? " <small>(baseline)</small>" : "") << "</td>";
    for (const auto& c : cols) {
      bool best = false;
      if (!std::isnan(c.v[i]) && runs.size() > 1 && (all_base || !r.baseline)) {
        best = true;
        for (size_t j = 0; j < runs.size(); ++j)
          if (!std::isnan(c.v[j]) && (all_base || !runs[j].baseline) && (c.lower ? c.v[j] < c.v[i] : c.v[j] > c.v[i]))
            best = false;
      }
      o << "<td" << (best ? " class=\"best\"" : "");
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
  }
  o << "</tbody></table></div>";
  return o.str();
}

std::string savings_html(const std::vector<Saving>& ss, const std::vector<LabelRow>& rows, const std::string& metric,
                         const std::vector<Run>& runs) {
  std::ostringstream o;
  std::string bnames;
  for (const auto& r : runs)
    if (r.baseline) bnames += (bnames.empty() ? "" : ", ") + r.name;
  o << "<h2>Compute saved</h2><p class=\"note\">Against the from-scratch family " << esc(bnames) << ", by final "
    << esc(metric) << ". <b>Compute-equivalent saving</b>: 1 − the run's FLOPs / the FLOPs a baseline needs to end at "
    << "the same value (interpolated in log FLOPs between the baselines' budgets; &lt; or &gt; when outside them). "
    << "<b>First crossing</b>: the first evaluation at or past the equal-compute baseline's final value, in steps and "
    << "FLOPs, against those the baseline took to first reach it. Several runs under one name: mean (min … max).</p>";
  o << "<table id=\"savings\"><thead><tr><th>run</th><th>runs</th><th>final − baseline's (equal compute)</th>"
    << "<th>compute-equivalent saving</th><th>first crossing: steps saved</th><th>first crossing: FLOPs saved</th>"
    << "</tr></thead><tbody>";
  for (const auto& r : rows) {
    o << "<tr data-label=\"" << esc(r.label) << "\"><td>" << esc(r.label) << "</td><td>" << r.n << "</td><td data-v=\""
      << exact(r.delta.mean) << "\">" << agg_text(r.delta, false) << "</td><td data-v=\"" << exact(r.equiv.mean) << "\">"
      << esc(r.bounds) << agg_text(r.equiv, true) << "</td><td data-v=\"" << exact(r.steps.mean) << "\">"
      << agg_text(r.steps, true) << (r.crossed == r.n ? "" : " (" + std::to_string(r.crossed) + "/" + std::to_string(r.n) + " cross)")
      << "</td><td data-v=\"" << exact(r.flops.mean) << "\">" << agg_text(r.flops, true) << "</td></tr>";
  }
  o << "</tbody></table><details><summary>per run</summary><table><thead><tr><th>run</th><th>final</th>"
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

bool same_file(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  if (fs::exists(a, ec) && fs::exists(b, ec)) return fs::equivalent(a, b, ec);
  return fs::weakly_canonical(a, ec) == fs::weakly_canonical(b, ec);
}

}  // namespace

std::string write(const std::vector<std::string>& run_dirs_in, const std::string& out_path, const Options& opt) {
  std::vector<std::string> run_dirs = run_dirs_in;
  std::vector<bool> is_base(run_dirs.size(), false);
  for (const auto& b : opt.baseline) {
    bool found = false;
    for (size_t i = 0; i < run_dirs.size(); ++i)
      if (same_file(run_dirs[i], b)) is_base[i] = found = true;
    if (!found) run_dirs.push_back(b), is_base.push_back(true);
  }
  SCION_CHECK(!run_dirs.empty(), "report: name at least one run directory");
  // Never over one of the inputs.
  for (const auto& d : run_dirs) {
    SCION_CHECK(!same_file(out_path, d), "report: --out '", out_path, "' is the run directory '", d, "'");
    for (const char* f : {"metrics.jsonl", "graph.toml"})
      SCION_CHECK(!same_file(out_path, fs::path(d) / f), "report: --out '", out_path, "' is one of the inputs ('",
                  (fs::path(d) / f).string(), "'); name another file");
  }
  std::vector<Run> runs;
  for (size_t i = 0; i < run_dirs.size(); ++i) {  // everything is read before anything is written
    runs.push_back(read_run(run_dirs[i]));
    runs.back().baseline = is_base[i];
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
    r.color = kColors[i % kNColors];
  }
  const Metrics ms = classify(runs, opt.metrics);
  std::string metric = opt.metric;
  if (metric.empty()) {
    for (const auto& r : runs)
      for (const auto& row : r.rows)
        if (row.has("ppl/loss")) metric = "ppl/loss";
    if (metric.empty() && !ms.validation.empty()) metric = ms.validation.front();
    if (metric.empty()) metric = "loss";
  }
  const std::vector<Saving> ss = savings(runs, metric);
  const std::vector<LabelRow> lrows = by_label(ss);
  const std::string md = opt.baseline.empty() ? "" : savings_markdown(lrows, metric);
  SCION_CHECK(opt.baseline.empty() || !ss.empty(), "report: no run to price against the baseline (each needs a final '",
              metric, "' with its FLOPs, and so does each baseline)");

  const bool svg = out_path.size() > 4 && out_path.compare(out_path.size() - 4, 4, ".svg") == 0;
  std::ostringstream o;
  if (svg) {
    // One picture: a row of charts (step, tokens, flops; the latter two on log axes) per metric.
    const int W = 560, H = 320;
    int rows = 0;
    std::ostringstream body;
    for (const auto& m : ms.all()) {
      int col = 0;
      for (const std::string xa : {"step", "tokens", "flops"}) {
        std::vector<Series> series;
        for (const auto& r : runs) {
          Series s;
          s.run = r.name;
          std::string last;
          for (const auto& row : r.rows) {
            if (row.has(xa) && row.has(m)) s.x.push_back(row.get(xa)), s.y.push_back(row.get(m));
            if (row.stage.empty() || row.stage == last) continue;
            if (!last.empty() && row.has(xa)) s.stages.push_back({row.get(xa), row.stage});
            last = row.stage;
          }
          if (!s.x.empty()) series.push_back(std::move(s));
        }
        if (series.empty()) continue;
        body << "<svg x=\"" << col++ * W << "\" y=\"" << rows * H << "\""
             << svg_chart(m + " vs " + xa, xa, series, log_y_for(m), xa != "step").substr(4);
      }
      if (col) ++rows;
    }
    o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << 3 * W << "\" height=\"" << std::max(rows, 1) * H
      << "\"><rect width=\"100%\" height=\"100%\" fill=\"white\"/>" << body.str() << "</svg>\n";
  } else {
    o << "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Scion report</title><style>" << kReportCss
      << "</style></head><body><h1>Scion report</h1><p class=\"note\" id=\"runs\">";
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
    o << "</p><h2>Summary</h2>" << summary_html(runs, ms, metric, differing_keys(runs));
    if (!opt.baseline.empty()) o << savings_html(ss, lrows, metric, runs);
    o << "<h2>Charts</h2><div id=\"controls\">smoothing (training curves) <input id=\"smooth\" type=\"range\" min=\"0\" "
      << "max=\"0.99\" step=\"0.01\" value=\"0\"> <span id=\"smooth-v\">0</span></div><div id=\"legend\"></div>"
      << "<div id=\"charts\"></div><details id=\"more\"><summary>other metrics</summary><div id=\"charts-other\"></div>"
      << "</details><div id=\"tip\"></div><script id=\"data\" type=\"application/json\">" << page_data(runs, ms)
      << "</script><script>" << kReportJs << "</script></body></html>\n";
  }
  files::write_atomic(out_path, o.str());
  return md;
}

void write(const std::vector<std::string>& run_dirs, const std::string& out_path, const std::vector<std::string>& only) {
  Options o;
  o.metrics = only;
  write(run_dirs, out_path, o);
}

void write_html(const std::vector<std::string>& run_dirs, const std::string& out_path) { write(run_dirs, out_path); }

}  // namespace scion::report
