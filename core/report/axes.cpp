#include "report/axes.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace scion::report {

namespace {

double to_axis(double v, bool log) { return log ? std::log10(v) : v; }
double from_axis(double v, bool log) { return log ? std::pow(10.0, v) : v; }

// Powers of ten (times 2 and 5, or 3, when the range spans few decades), at most ~7 of them;
// empty when that gives fewer than 3 ticks.
std::vector<double> log_ticks(double lo, double hi) {
  std::vector<double> t;
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
  if (t.size() < 3) t.clear();  // about a decade or less, too few round values
  return t;
}

std::vector<double> linear_ticks(double lo, double hi) {
  if (hi == lo) return {lo};
  const double raw = (hi - lo) / 5, mag = std::pow(10.0, std::floor(std::log10(raw))), r = raw / mag;
  const double step = (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
  // Ticks by index, not by adding step up to hi: when the range is below the values'
  // precision (lo = 1e17, hi = 1e17 + 16) v += step would never move and the loop never end.
  const double k0 = std::ceil(lo / step - 1e-9), k1 = std::floor(hi / step + 1e-9);
  if (!(k1 - k0 >= 0 && k1 - k0 <= 20) || k0 * step == (k0 + 1) * step) return {lo, hi};
  const int n = int(k1 - k0);  // at most 21 ticks, counted by an int: k0 + i may not move when k0 is huge
  std::vector<double> t;
  for (int i = 0; i <= n; ++i) {
    const double v = (k0 + double(i)) * step;
    t.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  }
  return t;
}

Axis make_axis(double min, double max, bool log, bool pad) {
  Axis a;
  a.log = log, a.min = min, a.max = max;
  a.lo = to_axis(min, log), a.hi = to_axis(max, log);
  if (a.hi == a.lo) a.lo -= 0.5, a.hi += 0.5;
  if (pad) {
    const double p = 0.05 * (a.hi - a.lo);
    a.lo -= p, a.hi += p;
  }
  a.ticks = nice_ticks(from_axis(a.lo, log), from_axis(a.hi, log), log);
  return a;
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, bool log_scale) {
  if (!(hi >= lo) || !std::isfinite(lo) || !std::isfinite(hi)) return {};
  if (log_scale && lo > 0)
    if (std::vector<double> t = log_ticks(lo, hi); !t.empty()) return t;
  return linear_ticks(lo, hi);  // on a log axis too, when it spans too little for log ticks
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

double Axis::position(double v) const { return (to_axis(v, log) - lo) / (hi - lo); }

bool Extent::drawn(double x, double y) const {
  return std::isfinite(x) && std::isfinite(y) && !(log_y_ && y <= 0) && !(log_x_ && x <= 0);
}

void Extent::add(double x, double y) {
  if (!drawn(x, y)) return;
  x0_ = std::min(x0_, x), x1_ = std::max(x1_, x);
  y0_ = std::min(y0_, y), y1_ = std::max(y1_, y);
}

std::optional<Frame> Extent::frame() const {
  if (!(x1_ >= x0_) || !(y1_ >= y0_)) return std::nullopt;
  return Frame{make_axis(x0_, x1_, log_x_, false), make_axis(y0_, y1_, log_y_, true)};
}

}  // namespace scion::report
