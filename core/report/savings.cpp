#include "report/savings.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <set>
#include <sstream>
#include <utility>

#include "report/format.h"

namespace scion::report {

namespace fs = std::filesystem;

namespace {

using Curve = std::vector<std::pair<double, double>>;  // (final FLOPs, final value) of each budget, by FLOPs

// The baselines next to the run (one seed's folder), or all of them.
std::vector<const Run*> family_of(const Run& r, const std::vector<const Run*>& base) {
  std::vector<const Run*> fam;
  const fs::path parent = fs::path(r.dir).lexically_normal().parent_path();
  for (const Run* b : base)
    if (fs::path(b->dir).lexically_normal().parent_path() == parent) fam.push_back(b);
  return fam.empty() ? base : fam;
}

// The family's budgets with a final value, and (in *ref) the one whose final FLOPs are nearest
// `flops` in log FLOPs: the equal-compute baseline.
Curve budget_curve(const std::vector<const Run*>& fam, const std::string& metric, double flops, const Run** ref) {
  Curve curve;
  double ref_dist = INFINITY;
  for (const Run* b : fam) {
    const Final bf = final_of(*b, metric);
    if (std::isnan(bf.value) || !(bf.flops > 0)) continue;
    curve.push_back({bf.flops, bf.value});
    const double d = std::fabs(std::log(bf.flops / flops));
    if (d < ref_dist) ref_dist = d, *ref = b;
  }
  std::sort(curve.begin(), curve.end());
  return curve;
}

// The baseline FLOPs needed to end at `value`, interpolated in log FLOPs between the two
// budgets that bracket it; outside the family's range, the nearest end, with its bound.
struct Needed {
  double flops;
  const char* bound = "";  // ">": better than the largest budget (the saving is at least that); "<": worse
};
Needed flops_needed(const Curve& curve, double value, bool hi) {
  for (size_t i = 0; i + 1 < curve.size(); ++i) {
    const auto [f0, l0] = curve[i];
    const auto [f1, l1] = curve[i + 1];
    if (std::min(l0, l1) <= value && value <= std::max(l0, l1) && l0 != l1) {
      const double t = (value - l0) / (l1 - l0);
      return {std::exp(std::log(f0) + t * (std::log(f1) - std::log(f0)))};
    }
  }
  double best = curve[0].second;
  for (const auto& c : curve) best = hi ? std::max(best, c.second) : std::min(best, c.second);
  if (curve.size() == 1 && value == best) return {curve[0].first};
  if (hi ? value > best : value < best) return {curve.back().first, ">"};
  return {curve.front().first, "<"};
}

// The first evaluation of `x` at or past `target`: its step and FLOPs.
bool first_reach(const Run& x, const std::string& metric, double target, double* step, double* flops) {
  const bool hi = higher_is_better(metric);
  for (const auto& row : x.rows) {
    const double v = row.get(metric);
    if (std::isfinite(v) && (hi ? v >= target : v <= target)) {
      *step = row.get("step"), *flops = row.get("flops");
      return true;
    }
  }
  return false;
}

// The run against one family; false when neither it nor the family has a final value.
bool price(const Run& r, const std::vector<const Run*>& base, const std::string& metric, Saving* s) {
  const Final f = final_of(r, metric);
  if (std::isnan(f.value) || !(f.flops > 0)) return false;
  const Run* ref = nullptr;
  const Curve curve = budget_curve(family_of(r, base), metric, f.flops, &ref);
  if (!ref) return false;
  s->run = r.name, s->label = r.label, s->reference = ref->name, s->final = f.value, s->final_flops = f.flops;
  const Final rf = final_of(*ref, metric);
  s->delta = f.value - rf.value;
  const Needed need = flops_needed(curve, f.value, higher_is_better(metric));
  s->equiv = 1 - f.flops / need.flops;
  s->bound = std::string(need.bound);
  // First crossing: the first evaluation at or past the reference's final value, against the
  // first evaluation at which the reference itself reached it.
  double rs = NAN, rfl = NAN, bs = NAN, bfl = NAN;
  if (first_reach(r, metric, rf.value, &rs, &rfl) && first_reach(*ref, metric, rf.value, &bs, &bfl)) {
    s->crossed = true;
    s->steps_saved = 1 - rs / bs;
    s->flops_saved = 1 - rfl / bfl;
  }
  return true;
}

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

LabelRow label_row(const std::string& label, const std::vector<Saving>& ss) {
  LabelRow lr;
  lr.label = label;
  std::vector<double> d, e, st, fl;
  std::set<std::string> b;
  for (const auto& s : ss) {
    if (s.label != label) continue;
    ++lr.n, lr.crossed += s.crossed;
    d.push_back(s.delta), e.push_back(s.equiv), st.push_back(s.steps_saved), fl.push_back(s.flops_saved);
    if (!s.bound.empty()) b.insert(s.bound);
  }
  for (const auto& x : b) lr.bounds += x;
  lr.delta = agg(d), lr.equiv = agg(e), lr.steps = agg(st), lr.flops = agg(fl);
  return lr;
}

}  // namespace

std::vector<Saving> savings(const std::vector<Run>& runs, const std::string& metric) {
  std::vector<Saving> out;
  std::vector<const Run*> base;
  for (const auto& r : runs)
    if (r.baseline) base.push_back(&r);
  if (base.empty()) return out;
  for (const auto& r : runs) {
    Saving s;
    if (!r.baseline && price(r, base, metric, &s)) out.push_back(s);
  }
  return out;
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

std::string LabelRow::crossed_note() const {
  return crossed == n ? "" : " (" + std::to_string(crossed) + "/" + std::to_string(n) + " cross)";
}

std::vector<LabelRow> by_label(const std::vector<Saving>& ss) {
  std::vector<std::string> order;
  for (const auto& s : ss)
    if (std::find(order.begin(), order.end(), s.label) == order.end()) order.push_back(s.label);
  std::vector<LabelRow> out;
  for (const auto& l : order) out.push_back(label_row(l, ss));
  return out;
}

std::string savings_markdown(const std::vector<LabelRow>& rows, const std::string& metric) {
  std::ostringstream o;
  o << "| run | runs | final " << metric << " − baseline's, equal compute | compute-equivalent saving | "
    << "first crossing: steps saved | first crossing: FLOPs saved |\n|---|---|---|---|---|---|\n";
  for (const auto& r : rows) {
    const std::string note = r.bounds.empty() ? "" : " (" + r.bounds + " bound)";
    o << "| " << r.label << " | " << r.n << " | " << agg_text(r.delta, false) << " | " << agg_text(r.equiv, true) << note
      << " | " << agg_text(r.steps, true) << r.crossed_note() << " | " << agg_text(r.flops, true) << " |\n";
  }
  return o.str();
}

}  // namespace scion::report
