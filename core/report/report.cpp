#include "scion/report.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "scion/error.h"
#include "scion/json.h"
#include "scion/files.h"
#include "scion/safetensors.h"

namespace scion::report {

namespace {

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

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

std::string fmt(double v) {
  char buf[32];
  if (v != 0 && (std::fabs(v) >= 1e5 || std::fabs(v) < 1e-3)) std::snprintf(buf, sizeof buf, "%.2e", v);
  else std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

struct Run {
  std::string name;
  std::vector<std::map<std::string, double>> rows;
  int non_finite = 0;  // NaN / Infinity values (a diverged step): kept as gaps in the curves
};

Run read_run(const std::string& dir) {
  namespace fs = std::filesystem;
  const fs::path p = fs::path(dir) / "metrics.jsonl";
  std::ifstream in(p);
  SCION_CHECK(in.good(), "report: '", p.string(), "' does not exist (is '", dir, "' a run directory?)");
  Run r;
  r.name = fs::path(dir).lexically_normal().filename().string();
  if (r.name.empty()) r.name = fs::path(dir).lexically_normal().parent_path().filename().string();
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const Json j = json_parse(line, p.string() + ":" + std::to_string(n));
    std::map<std::string, double> row;
    for (const auto& [k, v] : json_object(j))
      if (v.is_number()) {
        row[k] = json_number(v);
        if (!std::isfinite(row[k])) ++r.non_finite;
      }
    r.rows.push_back(std::move(row));
  }
  return r;
}

}  // namespace

std::string svg_chart(const std::string& title, const std::string& x_label, const std::vector<Series>& series,
                      bool log_y) {
  const double W = 560, H = 320, L = 70, R = 150, T = 30, B = 45;
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  auto ty = [&](double y) { return log_y ? std::log10(y) : y; };
  for (const auto& s : series)
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.y[i]) || (log_y && s.y[i] <= 0)) continue;
      x0 = std::min(x0, s.x[i]), x1 = std::max(x1, s.x[i]);
      y0 = std::min(y0, ty(s.y[i])), y1 = std::max(y1, ty(s.y[i]));
    }
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\" font-family=\"sans-serif\" font-size=\"11\">";
  o << "<text x=\"" << L << "\" y=\"18\" font-size=\"13\" font-weight=\"bold\">" << esc(title) << "</text>";
  if (!(x1 >= x0) || !(y1 >= y0)) {
    o << "<text x=\"" << L << "\" y=\"" << H / 2 << "\">no data</text></svg>";
    return o.str();
  }
  if (x1 == x0) x1 = x0 + 1;
  if (y1 == y0) y1 = y0 + 1;
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad, y1 += pad;
  auto px = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return T + (1 - (ty(y) - y0) / (y1 - y0)) * (H - T - B); };
  o << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << W - L - R << "\" height=\"" << H - T - B
    << "\" fill=\"none\" stroke=\"#999\"/>";
  for (int k = 0; k <= 4; ++k) {  // ticks
    const double fx = x0 + (x1 - x0) * k / 4, fy = y0 + (y1 - y0) * k / 4;
    const double yv = log_y ? std::pow(10.0, fy) : fy;
    o << "<text x=\"" << px(fx) << "\" y=\"" << H - B + 15 << "\" text-anchor=\"middle\">" << fmt(fx) << "</text>";
    o << "<text x=\"" << L - 5 << "\" y=\"" << T + (1 - double(k) / 4) * (H - T - B) + 4 << "\" text-anchor=\"end\">"
      << fmt(yv) << "</text>";
  }
  o << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 8 << "\" text-anchor=\"middle\">" << esc(x_label) << "</text>";
  for (size_t si = 0; si < series.size(); ++si) {
    const auto& s = series[si];
    const char* color = kColors[si % 8];
    // A value that is not finite (or not positive on a log axis) breaks the line: a gap, not a
    // segment drawn across it; the legend counts the non-finite ones.
    std::ostringstream pts;
    int non_finite = 0;
    auto flush = [&] {
      if (!pts.str().empty())
        o << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"1.6\" points=\"" << pts.str() << "\"/>";
      pts.str("");
    };
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (std::isfinite(s.y[i]) && !(log_y && s.y[i] <= 0)) pts << px(s.x[i]) << "," << py(s.y[i]) << " ";
      else non_finite += !std::isfinite(s.y[i]), flush();
    }
    flush();
    o << "<rect x=\"" << W - R + 10 << "\" y=\"" << T + 16 * si << "\" width=\"10\" height=\"10\" fill=\"" << color << "\"/>";
    o << "<text x=\"" << W - R + 25 << "\" y=\"" << T + 16 * si + 9 << "\">" << esc(s.run)
      << (non_finite ? " (" + std::to_string(non_finite) + " not finite)" : "") << "</text>";
  }
  o << "</svg>";
  return o.str();
}

namespace {

// The charts of a report: for each metric (all, or those asked for) one chart per x axis.
struct Chart {
  std::string metric, svg;
};

std::vector<Chart> charts(const std::vector<Run>& runs, const std::vector<std::string>& only) {
  const std::set<std::string> x_axes = {"step", "tokens", "flops"};
  const std::set<std::string> skip = {"elapsed_s", "tokens_per_s", "lr", "epoch"};
  std::set<std::string> metrics, present_x;
  for (const auto& r : runs)
    for (const auto& row : r.rows)
      for (const auto& [k, v] : row) {
        if (x_axes.count(k)) present_x.insert(k);
        else if (!skip.count(k)) metrics.insert(k);
      }
  for (const auto& m : only) {
    SCION_CHECK(!x_axes.count(m) && !skip.count(m), "report: '", m, "' is an x axis or a schedule, not a result to chart");
    SCION_CHECK(metrics.count(m), "report: no run has metric '", m, "' (hint: the metrics are the keys of metrics.jsonl, ",
                "e.g. loss, ppl/loss)");
  }
  std::vector<Chart> out;
  for (const auto& m : metrics) {
    if (!only.empty() && std::find(only.begin(), only.end(), m) == only.end()) continue;
    const bool log_y = m.find("ppl") != std::string::npos && m.find("loss") == std::string::npos;
    for (const std::string& xa : {std::string("step"), std::string("tokens"), std::string("flops")}) {
      if (!present_x.count(xa)) continue;
      std::vector<Series> series;
      for (const auto& r : runs) {
        Series s;
        s.run = r.name;
        for (const auto& row : r.rows) {
          auto ix = row.find(xa), iy = row.find(m);
          if (ix != row.end() && iy != row.end()) s.x.push_back(ix->second), s.y.push_back(iy->second);
        }
        if (!s.x.empty()) series.push_back(std::move(s));
      }
      if (!series.empty()) out.push_back({m, svg_chart(m + " vs " + xa, xa, series, log_y)});
    }
  }
  return out;
}

}  // namespace

void write(const std::vector<std::string>& run_dirs, const std::string& out_path, const std::vector<std::string>& only) {
  SCION_CHECK(!run_dirs.empty(), "report: name at least one run directory");
  std::vector<Run> runs;
  for (const auto& d : run_dirs) runs.push_back(read_run(d));  // everything is read before anything is written
  const std::vector<Chart> cs = charts(runs, only);
  const bool svg = out_path.size() > 4 && out_path.compare(out_path.size() - 4, 4, ".svg") == 0;
  std::ostringstream o;
  if (svg) {
    // One picture: a row of charts (step, tokens, flops) per metric.
    const int W = 560, H = 320;
    int rows = 0, col = 0;
    std::string last;
    std::ostringstream body;
    for (const auto& c : cs) {
      if (c.metric != last) ++rows, col = 0, last = c.metric;
      body << "<svg x=\"" << col++ * W << "\" y=\"" << (rows - 1) * H << "\"" << c.svg.substr(4);
    }
    o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << 3 * W << "\" height=\"" << std::max(rows, 1) * H
      << "\"><rect width=\"100%\" height=\"100%\" fill=\"white\"/>" << body.str() << "</svg>\n";
  } else {
    o << "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Scion report</title><style>"
      << "body{font-family:sans-serif;margin:20px}h2{margin-top:28px}.row{display:flex;flex-wrap:wrap;gap:8px}"
      << "</style></head><body><h1>Scion report</h1><p>Runs: ";
    for (size_t i = 0; i < runs.size(); ++i) o << (i ? ", " : "") << esc(runs[i].name) << " (" << runs[i].rows.size() << " lines"
        << (runs[i].non_finite ? ", " + std::to_string(runs[i].non_finite) + " values not finite, left as gaps" : "")
        << ")";
    o << "</p>";
    std::string last;
    for (const auto& c : cs) {
      if (c.metric != last) o << (last.empty() ? "" : "</div>") << "<h2>" << esc(c.metric) << "</h2><div class=\"row\">";
      last = c.metric;
      o << c.svg;
    }
    if (!last.empty()) o << "</div>";
    o << "</body></html>\n";
  }
  files::write_atomic(out_path, o.str());
}

void write_html(const std::vector<std::string>& run_dirs, const std::string& out_path) { write(run_dirs, out_path); }

}  // namespace scion::report
