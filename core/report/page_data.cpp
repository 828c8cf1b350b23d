#include "report/page_data.h"

#include <set>

#include "report/axes.h"
#include "scion/json.h"

namespace scion::report {

namespace {

const char* const kXAxes[] = {"step", "tokens", "flops"};

// The x axes a chart switches between, by the names the script looks them up by: steps
// (linear), tokens and FLOPs (each linear or log).
struct XMode {
  const char* name;
  const char* key;  // the metrics.jsonl key
  bool log;
};
const XMode kXModes[] = {{"step", "step", false},        {"tokens", "tokens", false}, {"tokens/log", "tokens", true},
                         {"flops", "flops", false},      {"flops/log", "flops", true}};

Json num_json(double v) { return std::isfinite(v) ? Json(v) : Json(); }

// [[value, label], ...]
template <class Values>
Json labelled(const Values& vs) {
  Json out = Json::array();
  for (double v : vs) out.push_back(Json::array({v, si(v)}));
  return out;
}

Json axis_json(const Axis& a) {
  Json j = Json::object();
  j["range"] = Json::array({a.lo, a.hi});
  j["ticks"] = labelled(a.ticks);
  return j;
}

// Per x axis mode, the frame of metric m over all runs (none where no point is drawn).
Json frames_of(const std::vector<Run>& runs, const std::string& m) {
  Json frames = Json::object();
  for (const XMode& mode : kXModes) {
    Extent extent(mode.log, log_y_for(m));
    for (const auto& r : runs)
      for (const auto& row : r.rows)
        if (row.has(m)) extent.add(row.get(mode.key), row.get(m));
    if (const auto f = extent.frame()) frames[mode.name] = Json{{"x", axis_json(f->x)}, {"y", axis_json(f->y)}};
  }
  return frames;
}

Json charts_json(const std::vector<Run>& runs, const Metrics& ms) {
  Json charts = Json::object();
  for (const auto& m : ms.all())
    charts[m] = Json{{"validation", is_validation(m)}, {"log_y", log_y_for(m)}, {"frames", frames_of(runs, m)}};
  return charts;
}

// Every x value the runs logged, with its label (the hover shows them).
Json x_labels(const std::vector<Run>& runs) {
  Json out = Json::object();
  for (const char* axis : kXAxes) {
    std::set<double> values;
    for (const auto& r : runs)
      for (const auto& row : r.rows)
        if (std::isfinite(row.get(axis))) values.insert(row.get(axis));
    out[axis] = labelled(values);
  }
  return out;
}

// The run's points of each metric, (step, tokens, flops, value), and where a new stage starts,
// (step, tokens, flops, name).
Json run_json(const Run& r, const Metrics& ms) {
  auto point = [](const Row& row, Json last) {
    return Json::array({num_json(row.get("step")), num_json(row.get("tokens")), num_json(row.get("flops")), last});
  };
  Json series = Json::object();
  for (const auto& m : ms.all()) {
    Json pts = Json::array();
    for (const auto& row : r.rows)
      if (row.has(m)) pts.push_back(point(row, num_json(row.get(m))));
    if (!pts.empty()) series[m] = pts;
  }
  Json stages = Json::array();
  std::string last;
  for (const auto& row : r.rows) {
    if (row.stage.empty() || row.stage == last) continue;
    if (!last.empty()) stages.push_back(point(row, row.stage));
    last = row.stage;
  }
  return Json{{"name", r.name}, {"color", r.color}, {"series", series}, {"stages", stages}};
}

}  // namespace

std::string page_data(const std::vector<Run>& runs, const Metrics& ms) {
  Json d = Json::object();
  d["validation"] = Json(ms.validation);
  d["loss"] = Json(ms.loss);
  std::vector<std::string> other = ms.more_validation;
  other.insert(other.end(), ms.other.begin(), ms.other.end());
  d["other"] = Json(other);
  Json rs = Json::array();
  for (const auto& r : runs) rs.push_back(run_json(r, ms));
  d["runs"] = rs;
  d["charts"] = charts_json(runs, ms);
  d["x_labels"] = x_labels(runs);
  std::string s = d.dump();
  for (size_t p = s.find("</"); p != std::string::npos; p = s.find("</", p)) s.replace(p, 2, "<\\/");
  return s;
}

}  // namespace scion::report
