#include "report/svg.h"

#include <algorithm>
#include <set>
#include <sstream>

#include "report/axes.h"
#include "report/format.h"

namespace scion::report {

namespace {

// One chart's drawing area and frame, in pixels.
struct Plot {
  static constexpr double W = 560, H = 320, L = 60, R = 150, T = 30, B = 45;
  Frame f;
  double px(double x) const { return L + f.x.position(x) * (W - L - R); }
  double py(double y) const { return T + (1 - f.y.position(y)) * (H - T - B); }
};

void draw_axes(const Plot& p, const std::string& x_label, std::ostringstream& o) {
  const double W = p.W, H = p.H, L = p.L, R = p.R, T = p.T, B = p.B;
  o << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << W - L - R << "\" height=\"" << H - T - B
    << "\" fill=\"none\" stroke=\"#999\"/>";
  for (double v : p.f.x.ticks) {
    const double x = p.px(v);
    o << "<line x1=\"" << x << "\" x2=\"" << x << "\" y1=\"" << T << "\" y2=\"" << H - B << "\" stroke=\"#eee\"/>";
    o << "<text x=\"" << x << "\" y=\"" << H - B + 15 << "\" text-anchor=\"middle\">" << si(v) << "</text>";
  }
  for (double v : p.f.y.ticks) {
    const double y = p.py(v);
    o << "<line x1=\"" << L << "\" x2=\"" << W - R << "\" y1=\"" << y << "\" y2=\"" << y << "\" stroke=\"#eee\"/>";
    o << "<text x=\"" << L - 5 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">" << si(v) << "</text>";
  }
  o << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 8 << "\" text-anchor=\"middle\">" << esc(x_label)
    << (p.f.x.log ? " (log)" : "") << "</text>";
}

// Stage boundaries, as the page draws them: a dashed line and the new stage's name.
void draw_stages(const Plot& p, const std::vector<Series>& series, std::ostringstream& o) {
  std::set<double> marked;
  for (const auto& s : series)
    for (const auto& [x, name] : s.stages) {
      if (!std::isfinite(x) || (p.f.x.log && x <= 0) || x < p.f.x.min || x > p.f.x.max || !marked.insert(x).second)
        continue;
      o << "<line class=\"stage\" x1=\"" << p.px(x) << "\" x2=\"" << p.px(x) << "\" y1=\"" << p.T << "\" y2=\""
        << p.H - p.B << "\" stroke=\"#999\" stroke-dasharray=\"4 3\"/>";
      o << "<text x=\"" << p.px(x) + 3 << "\" y=\"" << p.T + 11 << "\" fill=\"#777\">" << esc(name) << "</text>";
    }
}

// A value that is not drawn (not finite, or not positive on a log axis) breaks the line: a
// gap, not a segment drawn across it; the legend counts the values that are not finite. A
// lone point is a dot.
void draw_series(const Plot& p, const Extent& extent, const Series& s, size_t index, std::ostringstream& o) {
  const char* c = color(index);
  std::vector<std::pair<double, double>> piece;
  int non_finite = 0;
  auto flush = [&] {
    if (piece.size() == 1)
      o << "<circle cx=\"" << piece[0].first << "\" cy=\"" << piece[0].second << "\" r=\"3\" fill=\"" << c << "\"/>";
    else if (piece.size() > 1) {
      o << "<polyline fill=\"none\" stroke=\"" << c << "\" stroke-width=\"1.6\" points=\"";
      for (const auto& [x, y] : piece) o << x << "," << y << " ";
      o << "\"/>";
    }
    piece.clear();
  };
  for (size_t i = 0; i < s.x.size(); ++i) {
    if (extent.drawn(s.x[i], s.y[i])) piece.push_back({p.px(s.x[i]), p.py(s.y[i])});
    else non_finite += !std::isfinite(s.y[i]), flush();
  }
  flush();
  o << "<rect x=\"" << p.W - p.R + 10 << "\" y=\"" << p.T + 16 * index << "\" width=\"10\" height=\"10\" fill=\"" << c
    << "\"/>";
  o << "<text x=\"" << p.W - p.R + 25 << "\" y=\"" << p.T + 16 * index + 9 << "\">" << esc(s.run)
    << (non_finite ? " (" + std::to_string(non_finite) + " not finite)" : "") << "</text>";
}

// The series of metric `m` against x axis `xa`: one per run that has both.
std::vector<Series> series_of(const std::vector<Run>& runs, const std::string& m, const std::string& xa) {
  std::vector<Series> out;
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
    if (!s.x.empty()) out.push_back(std::move(s));
  }
  return out;
}

}  // namespace

std::string svg_chart(const std::string& title, const std::string& x_label, const std::vector<Series>& series,
                      bool log_y, bool log_x) {
  Extent extent(log_x, log_y);
  for (const auto& s : series)
    for (size_t i = 0; i < s.x.size(); ++i) extent.add(s.x[i], s.y[i]);
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << Plot::W << "\" height=\"" << Plot::H
    << "\" font-family=\"sans-serif\" font-size=\"11\">";
  o << "<text x=\"" << Plot::L << "\" y=\"18\" font-size=\"13\" font-weight=\"bold\">" << esc(title) << "</text>";
  const std::optional<Frame> f = extent.frame();
  if (!f) {
    o << "<text x=\"" << Plot::L << "\" y=\"" << Plot::H / 2 << "\">no data</text></svg>";
    return o.str();
  }
  const Plot p{*f};
  draw_axes(p, x_label, o);
  draw_stages(p, series, o);
  for (size_t i = 0; i < series.size(); ++i) draw_series(p, extent, series[i], i, o);
  o << "</svg>";
  return o.str();
}

std::string svg_picture(const std::vector<Run>& runs, const Metrics& ms) {
  const int W = 560, H = 320;
  int rows = 0;
  std::ostringstream body;
  for (const auto& m : ms.all()) {
    int col = 0;
    for (const std::string xa : {"step", "tokens", "flops"}) {
      const std::vector<Series> series = series_of(runs, m, xa);
      if (series.empty()) continue;
      body << "<svg x=\"" << col++ * W << "\" y=\"" << rows * H << "\""
           << svg_chart(m + " vs " + xa, xa, series, log_y_for(m), xa != "step").substr(4);
    }
    if (col) ++rows;
  }
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << 3 * W << "\" height=\"" << std::max(rows, 1) * H
    << "\"><rect width=\"100%\" height=\"100%\" fill=\"white\"/>" << body.str() << "</svg>\n";
  return o.str();
}

}  // namespace scion::report
