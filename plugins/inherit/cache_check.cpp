// loss.inherit's `cache` against the graph it is read by (cache_check.h).
#include "cache_check.h"

#include <algorithm>

#include "inherit.h"
#include "scion/teacher_cache.h"

namespace scion::inherit {

namespace tc = teacher_cache;

int64_t cache_steps_needed(const GraphView& g, const GraphNodeView& self) {
  const Params& p = self.params;
  const Alpha alpha(AlphaSchedule{AlphaSchedule::parse(p.string("schedule")), p.number("alpha"), p.integer("steps")});
  int64_t at = 0, updates = 0, need = 0;
  for (const GraphStageView& s : g.stages) {
    const bool uses = std::find(s.losses.begin(), s.losses.end(), self.name) != s.losses.end();
    for (int64_t i = 0; i < s.steps; ++i, ++at)
      if (uses && alpha.at(updates++) > 0) need = at + 1;
  }
  return need;
}

namespace {

std::string text(const Json& j) { return j.is_string() ? "'" + json_string(j) + "'" : json_dump(j); }

}  // namespace

std::vector<GraphProblem> check_cache(const GraphView& g, const GraphNodeView& self) {
  std::vector<GraphProblem> out;
  const std::string dir = self.params.string("cache");
  const bool teacher = self.inputs.count("teacher") > 0;
  if (dir.empty()) {
    if (!teacher)
      out.push_back({"", "loss.inherit needs a teacher: connect its input 'teacher' or name a teacher cache",
                     "teacher = \"<model>.logits\", or cache = \"<folder written by scion teacher-cache>\""});
    return out;
  }
  if (teacher) {
    out.push_back({"cache", "loss.inherit reads its teacher from the cache '" + dir + "' and from input 'teacher' at once",
                   "keep one: the cache (and remove teacher = ...), or the teacher (and remove cache)"});
    return out;
  }
  const std::string rewrite = "rewrite it: scion teacher-cache <this graph> --teacher <model> --out " + dir;
  auto problem = [&](const std::string& m) { out.push_back({"cache", "teacher cache '" + dir + "': " + m, rewrite}); };
  tc::Manifest m;
  try {
    m = tc::Manifest::read(dir);
  } catch (const std::exception& e) {
    out.push_back({"cache", e.what(), "write it first: scion teacher-cache <this graph> --teacher <model> --out " + dir});
    return out;
  }
  const Json& j = m.json;
  if (std::abs(m.temperature - self.params.number("temperature")) > 1e-9)
    problem("written at temperature " + std::to_string(m.temperature) + ", the loss's temperature is " +
            std::to_string(self.params.number("temperature")));
  // The data the loss's targets come from: the batches the cache was written for.
  const GraphNodeView* data = g.input_source(self, "targets");
  if (data && j.contains("data")) {
    const Json& d = j.at("data");
    if (d.value("plugin", "") != data->plugin)
      problem("written for a " + d.value("plugin", "?") + " data node, the targets come from '" + data->name + "' (" +
              data->plugin + ")");
    const Json now = tc::data_params(data->params.all());
    const Json then = d.contains("params") ? d.at("params") : Json::object();
    for (const auto& [k, v] : now.items())
      if (!then.contains(k) || then.at(k) != v)
        problem("written with " + k + " = " + (then.contains(k) ? text(then.at(k)) : "(unset)") + " for data node '" +
                data->name + "', this graph has " + text(v));
    if (d.contains("seed") && d.at("seed").get<uint64_t>() != data->params.context().seed)
      problem("written for run seed " + text(j.value("seed", Json())) + "; this graph's seed differs, so the data order does");
    if (data->params.has("files")) {
      Json files;
      try {
        files = tc::data_files(data->params.strings("files"));
      } catch (const std::exception&) {
        files = Json::array();  // the schema's path check says so
      }
      if (d.contains("files") && files != d.at("files")) {
        std::string what = "its data files differ";
        for (const Json& f : json_array(files)) {
          const auto& old = json_array(d.at("files"));
          const bool same = std::find(old.begin(), old.end(), f) != old.end();
          if (!same) {
            what = "data file '" + json_string(f.at("path")) + "' is not the one it was written from (other contents or new)";
            break;
          }
        }
        problem(what);
      }
    }
    if (data->params.has("tokenizer") && j.contains("tokenizer") && g.tokenizer) {
      std::shared_ptr<Tokenizer> tok;
      try {
        tok = g.tokenizer(data->params.string("tokenizer"));
      } catch (const std::exception&) {
      }
      if (tok && tc::tokenizer_hash(*tok) != j.at("tokenizer").value("hash", ""))
        problem("written with another tokenizer (" + j.at("tokenizer").value("plugin", "?") + ", hash " +
                j.at("tokenizer").value("hash", "?") + ") than '" + data->params.string("tokenizer") + "' (hash " +
                tc::tokenizer_hash(*tok) + ")");
    }
  }
  // The plan up to the last update that reads the teacher: the same stages, so the same batches.
  const int64_t need = cache_steps_needed(g, self);
  const Json stages = j.contains("stages") ? j.at("stages") : Json::array();
  int64_t at = 0;
  for (size_t i = 0; i < g.stages.size() && at < need; at += g.stages[i].steps, ++i) {
    const GraphStageView& s = g.stages[i];
    const bool same = i < stages.size() && stages[i].value("name", "") == s.name &&
                      (stages[i].value("steps", int64_t(-1)) == s.steps || at + s.steps > m.steps);
    if (!same) {
      problem("written for another stage plan: stage " + std::to_string(i) + " is '" + s.name + "' of " +
              std::to_string(s.steps) + " steps here, " +
              (i < stages.size() ? "'" + stages[i].value("name", "?") + "' of " +
                                       std::to_string(stages[i].value("steps", int64_t(0))) + " steps there"
                                 : "absent there"));
      break;
    }
  }
  if (m.steps < need)
    problem("covers the run's updates 0 to " + std::to_string(m.steps - 1) + ", but the loss reads its teacher until update " +
            std::to_string(need - 1) + " (hint: scion teacher-cache ... --steps " + std::to_string(need) + ")");
  for (const tc::ShardInfo& s : m.shards) {
    if (s.first >= need) continue;
    const std::string p = tc::shard_problem(dir, m, s);
    if (!p.empty()) {
      out.push_back({"cache", "teacher cache '" + dir + "': " + p,
                     "rerun scion teacher-cache with the same arguments: it writes the shards that are not whole"});
      break;  // one is enough to say the cache is not whole
    }
  }
  return out;
}

}  // namespace scion::inherit
