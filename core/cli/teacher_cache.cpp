// `scion teacher-cache GRAPH --teacher NODE`: runs a frozen teacher once over exactly the
// batches a student graph will read and stores its distribution sparsely
// (scion/teacher_cache.h), for loss.inherit's `cache`.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <iostream>
#include <set>
#include <toml++/toml.h>

#include "cli/cli.h"
#include "graph/graph.h"
#include "graph/node_factory.h"
#include "runtime/executor.h"
#include "runtime/communicator.h"
#include "scion/autograd.h"
#include "scion/files.h"
#include "scion/owned.h"
#include "scion/random.h"
#include "scion/teacher_cache.h"
#include "scion/threads.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;
using namespace scion::runtime;

namespace scion::cli {
namespace {

namespace tc = teacher_cache;

struct Options {
  std::string graph, teacher, loss, out, format = "topk", dtype = "bf16", device;
  int64_t k = 10, steps = -1, steps_per_shard = 100;
  double temperature = -1;
  int world = 0;
  bool plain = false;
  std::vector<std::string> plugin_dirs, sets;
};

// The loss.inherit nodes of the graph file that read a cache (name -> its cache folder): the
// graph as written, before validation (which refuses a cache that does not exist yet).
std::map<std::string, std::string> cached_losses(const std::string& file) {
  std::map<std::string, std::string> out;
  toml::table root;
  try {
    root = toml::parse_file(file);
  } catch (const toml::parse_error&) {
    return out;  // validation says what is wrong with it
  }
  if (const toml::table* nodes = root["nodes"].as_table())
    for (const auto& [name, n] : *nodes)
      if (const toml::table* t = n.as_table())
        if (t->get("plugin") && t->get("plugin")->value_or(std::string()) == "loss.inherit" && t->get("cache"))
          out[std::string(name.str())] = t->get("cache")->value_or(std::string());
  return out;
}

// Makes nodes of `g` on demand, as a run on rank `rank` of `world` makes them.
struct NodeMaker : NodeResolver {
  NodeMaker(const GraphSpec& g, const PluginRegistry& reg, int rank, int world)
      : g(g), reg(reg), ctx(GraphContext::of(g, rank, world)) {}
  std::shared_ptr<Plugin> node(const std::string& name) const override {
    if (auto it = made.find(name); it != made.end()) return it->second;
    const NodeSpec* spec = g.node(name);
    SCION_CHECK(spec, "teacher-cache: no node '", name, "'");
    return made[name] = make_node(reg, *spec, ctx, *this);
  }
  const GraphSpec& g;
  const PluginRegistry& reg;
  GraphContext ctx;
  mutable std::map<std::string, std::shared_ptr<Plugin>> made;
};

// Whether a stage's losses read data node `data` (the nodes a run of the stage makes run).
bool reads(const GraphSpec& g, const StageSpec& s, const std::string& data) {
  std::set<std::string> seen;
  std::function<bool(const std::string&)> visit = [&](const std::string& n) {
    if (n == data) return true;
    if (!seen.insert(n).second) return false;
    for (const auto& [port, src] : g.node(n)->inputs)
      if (visit(src.node)) return true;
    return false;
  };
  for (const auto& [l, w] : s.losses)
    if (visit(l)) return true;
  return false;
}

// The run's updates [0, n) at which loss.inherit reads its teacher (α > 0 at one of them): a
// linear α is 0 from the loss's `steps`-th update on, α = 0 never reads it. The loss's check
// refuses a cache that ends before this.
int64_t updates_reading_teacher(const GraphSpec& g, const NodeSpec& loss) {
  const std::string schedule = json_string(loss.params.at("schedule"));
  const double alpha = json_number(loss.params.at("alpha"));
  const int64_t decay = json_int(loss.params.at("steps"));
  int64_t at = 0, updates = 0, need = 0;
  for (const StageSpec& s : g.stages) {
    bool uses = false;
    for (const auto& [l, w] : s.losses) uses |= l == loss.name;
    for (int64_t i = 0; i < s.steps; ++i, ++at)
      if (uses && alpha > 0 && (schedule != "linear" || updates++ < decay)) need = at + 1;
  }
  return need;
}

}  // namespace

int cmd_teacher_cache(int argc, char** argv) {
  Options o;
  po::options_description d("scion teacher-cache options");
  d.add_options()("graph", po::value(&o.graph)->required(), "the student graph (its loss.inherit names the cache)")(
      "teacher", po::value(&o.teacher)->required(), "the frozen teacher model node")(
      "loss", po::value(&o.loss), "the loss.inherit node that reads the cache (default: the one with a cache)")(
      "out", po::value(&o.out), "cache folder (default: that loss's cache)")(
      "k", po::value(&o.k), "ids kept (topk) or drawn (sample) per position (10)")(
      "format", po::value(&o.format), "topk | sample (topk)")(
      "temperature", po::value(&o.temperature), "teacher temperature tau (default: the loss's)")(
      "dtype", po::value(&o.dtype), "bf16 | f16 | f32 of the log-probabilities (bf16)")(
      "steps", po::value(&o.steps), "updates of the run to cover (default: up to the last at which the loss's alpha is above 0)")(
      "steps-per-shard", po::value(&o.steps_per_shard), "updates per shard file (100)")(
      "world", po::value(&o.world), "ranks the student will run on (default: this launch's, else 1)")(
      "device", po::value(&o.device), "cpu | cuda | auto (default: the graph's)")(
      "plain", po::bool_switch(&o.plain), "plain log lines even on a terminal")(
      "plugin-dir", po::value(&o.plugin_dirs)->composing(), "extra folder of plugin libraries")(
      "set", po::value(&o.sets)->composing(), "override a graph value: path.to.key=value (repeatable)");
  po::positional_options_description pos;
  pos.add("graph", 1);
  if (!parse(argc, argv, d, &pos,
             "usage: scion teacher-cache GRAPH --teacher NODE [--out DIR] [--k K] [--format topk|sample]\n"
             "       [--temperature T] [--dtype bf16|f16|f32] [--steps N] [--world N]\n"
             "       mpirun -np N scion teacher-cache ...   (each rank writes its own shards)"))
    return 0;
  const tc::Layout layout{tc::format_from_string(o.format), o.k, dtype_from_string(o.dtype)};
  if (layout.dtype != DType::f32 && layout.dtype != DType::bf16 && layout.dtype != DType::f16)
    throw po::error("--dtype " + o.dtype + ": bf16, f16 or f32");
  if (o.k < 1 || o.k > 65535) throw po::error("--k " + std::to_string(o.k) + ": 1 to 65535");
  if (o.steps_per_shard < 1) throw po::error("--steps-per-shard: at least 1");

  // The student graph read back as the online graph it stands for: the loss reads the teacher.
  const auto cached = cached_losses(o.graph);
  if (o.loss.empty()) {
    if (cached.size() != 1)
      throw po::error(cached.empty() ? "the graph has no loss.inherit node with a cache; name the loss with --loss"
                                     : "the graph has several loss.inherit nodes with a cache; name one with --loss");
    o.loss = cached.begin()->first;
  }
  if (o.out.empty()) {
    auto it = cached.find(o.loss);
    if (it == cached.end() || it->second.empty()) throw po::error("name the cache folder with --out");
    o.out = it->second;
  }
  std::vector<std::string> sets = o.sets;
  sets.push_back(set_override("nodes." + o.loss + ".cache", ""));
  sets.push_back(set_override("nodes." + o.loss + ".teacher", o.teacher + ".logits"));
  if (!o.device.empty()) sets.push_back(set_override("run.device", o.device));
  PluginRegistry reg = load_registry(o.plugin_dirs);
  const GraphSpec g = load_graph_file(o.graph, sets, reg);

  const NodeSpec* teacher = g.node(o.teacher);
  SCION_CHECK(teacher && teacher->info->entry.kind == PluginKind::model, "teacher-cache: '", o.teacher,
              "' is not a model node of ", o.graph);
  SCION_CHECK(teacher->frozen, "teacher-cache: the teacher '", o.teacher, "' must be frozen (frozen = true)");
  const NodeSpec* loss = g.node(o.loss);
  SCION_CHECK(loss->inputs.count("targets"), "teacher-cache: loss '", o.loss, "' has no targets");
  const std::string data = loss->inputs.at("targets").node;
  for (const auto& [port, src] : teacher->inputs)
    SCION_CHECK(src.node == data, "teacher-cache: the teacher's input '", port, "' comes from '", src.node,
                "', not from the data node '", data, "' that gives the loss its targets");
  const NodeSpec* data_spec = g.node(data);
  const std::string tokenizer = data_spec->refs.count("tokenizer") ? data_spec->refs.at("tokenizer") : "";
  const double tau = o.temperature > 0 ? o.temperature : json_number(loss->params.at("temperature"));

  // Where the student reads the data node, and the shards that hold those updates.
  std::vector<std::pair<const StageSpec*, bool>> stages;
  for (const StageSpec& s : g.stages) stages.emplace_back(&s, reads(g, s, data));
  const int64_t steps = o.steps >= 0 ? o.steps : updates_reading_teacher(g, *loss);
  const LaunchInfo launch = launch_info();
  const int world = o.world > 0 ? o.world : launch.world;
  SCION_CHECK(launch.world == 1 || world == launch.world, "teacher-cache: --world ", world, " but this launch has ",
              launch.world, " ranks");
  std::vector<int64_t> read_steps;  // the run's updates at which the data node is read
  {
    int64_t at = 0;
    for (const auto& [s, r] : stages)
      for (int64_t i = 0; i < s->steps; ++i, ++at)
        if (r && at < steps) read_steps.push_back(at);
  }
  auto records_in = [&](int64_t first) {
    int64_t n = 0;
    for (int64_t s : read_steps) n += s >= first && s < first + o.steps_per_shard;
    return n;
  };

  // Rank 0's nodes (each rank makes its own); the manifest needs the teacher's sizes.
  NodeMaker probe(g, reg, 0, world);
  auto teacher_model = std::dynamic_pointer_cast<Model>(probe.node(o.teacher));
  const Json tcfg = teacher_model->config();
  SCION_CHECK(tcfg.contains("vocab"), "teacher-cache: the teacher's config gives no vocab size");
  const int64_t vocab = json_int(tcfg.at("vocab"));
  SCION_CHECK(layout.format == tc::Format::sample || o.k <= vocab, "teacher-cache: --k ", o.k, " is larger than the teacher's vocabulary (", vocab, ")");
  const int64_t B = json_int(data_spec->params.at("batch_size")), T = json_int(data_spec->params.at("seq_len"));
  const double fwd_per_token = teacher_model->flops_per_token(T) / 3.0;

  Json m;
  m["format"] = Json(tc::format_name(layout.format));
  m["k"] = Json(layout.k);
  m["temperature"] = Json(tau);
  m["dtype"] = Json(dtype_name(layout.dtype));
  m["bytes_per_token"] = Json(layout.slot_bytes());
  m["vocab"] = Json(vocab);
  m["seq_len"] = Json(T);
  m["batch_size"] = Json(B);
  m["world"] = Json(world);
  m["steps"] = Json(steps);
  m["steps_per_shard"] = Json(o.steps_per_shard);
  m["seed"] = Json(g.run.seed);
  Json dj;
  dj["node"] = Json(data);
  dj["plugin"] = Json(data_spec->plugin);
  dj["seed"] = Json(derive_seed(g.run.seed, hash_name(data)));
  Json dp = data_spec->params;
  for (const auto& [k, v] : data_spec->refs) dp[k] = Json(v);
  dj["params"] = tc::data_params(dp);
  Json files = Json::array();
  if (dp.contains("files")) files = tc::data_files(Params(data_spec->params).strings("files"));
  dj["files"] = files;
  m["data"] = dj;
  if (!tokenizer.empty()) {
    Json tj;
    tj["node"] = Json(tokenizer);
    tj["plugin"] = Json(g.node(tokenizer)->plugin);
    tj["hash"] = Json(tc::tokenizer_hash(*std::dynamic_pointer_cast<Tokenizer>(probe.node(tokenizer))));
    m["tokenizer"] = tj;
  }
  Json tj;
  tj["node"] = Json(o.teacher);
  tj["plugin"] = Json(teacher->plugin);
  const std::string load = teacher->params.contains("load") && teacher->params.at("load").is_string()
                               ? json_string(teacher->params.at("load")) : "";
  tj["checkpoint"] = Json(load);
  const std::string weights = fs::is_directory(load) ? load + "/model.safetensors" : load;
  tj["hash"] = Json(load.empty() ? std::string("none (initialised, not loaded)") : tc::file_fingerprint(weights));
  tj["forward_flops_per_token"] = Json(fwd_per_token);
  m["teacher"] = tj;
  Json st = Json::array();
  for (const auto& [s, r] : stages) {
    Json e;
    e["name"] = Json(s->name);
    e["steps"] = Json(s->steps);
    e["reads_data"] = Json(r);
    st.push_back(e);
  }
  m["stages"] = st;
  Json shards = Json::array();
  int64_t records = 0;
  for (int r = 0; r < world; ++r)
    for (int64_t first = 0; first < steps; first += o.steps_per_shard)
      if (const int64_t n = records_in(first); n > 0) {
        Json e;
        e["rank"] = Json(r);
        e["first"] = Json(first);
        e["records"] = Json(n);
        shards.push_back(e);
        records += n;
      }
  m["shards"] = shards;
  // Charged once, here: the student runs that read the cache run no teacher.
  m["tokens"] = Json(double(records) * double(B * T));
  m["teacher_forward_flops"] = Json(double(records) * double(B * T) * fwd_per_token);
  const tc::Manifest man = tc::Manifest::from_json(m, o.out);

  // A folder that holds another cache is refused; the same one is continued (resume).
  const std::string mpath = (fs::path(o.out) / tc::kManifestFile).string();
  // A folder of the user's (not empty, no marker) is never written into.
  owned::adopt(o.out, "teacher-cache", "teacher cache folder");
  if (fs::exists(mpath)) {
    const tc::Manifest old = tc::Manifest::read(o.out);
    SCION_CHECK(json_dump(old.json) == json_dump(m), "teacher-cache: '", o.out,
                "' holds a cache written with other settings or for another graph (hint: another --out, or remove it)");
  } else if (launch.rank == 0) {
    files::write_atomic(mpath, json_dump(m) + "\n");
  }

  const bool tty = !o.plain && ::isatty(STDOUT_FILENO);
  set_num_threads(g.run.threads);
  const Device device = g.run.device.resolve();
  std::vector<int> ranks;
  if (launch.world > 1) ranks = {launch.rank};
  else for (int r = 0; r < world; ++r) ranks.push_back(r);
  const uint64_t draw_seed = derive_seed(g.run.seed, hash_name("teacher-cache"));
  int64_t written = 0, skipped = 0;
  for (int rank : ranks) {
    NodeMaker other(g, reg, rank, world);
    NodeMaker& nodes = rank == 0 ? probe : other;  // rank 0's nodes are made already (nothing read yet)
    auto model = std::dynamic_pointer_cast<Model>(nodes.node(o.teacher));
    auto source = std::dynamic_pointer_cast<DataSource>(nodes.node(data));
    if (device.is_cuda()) model->module().to(device);
    const auto t0 = std::chrono::steady_clock::now();
    int64_t done = 0, todo = 0;
    for (const tc::ShardInfo& s : man.shards)
      if (s.rank == rank && !tc::shard_problem(o.out, man, s).empty()) todo += s.records;
    std::unique_ptr<tc::ShardWriter> w;
    const tc::ShardInfo* info = nullptr;
    int64_t at = 0, in_shard = 0;
    for (const auto& [s, r] : stages) {
      for (int64_t i = 0; i < s->steps && at < steps; ++i, ++at) {
        if (!r) continue;
        StepContext ctx;
        ctx.step = at, ctx.stage_step = i, ctx.stage = s->name, ctx.seed = g.run.seed, ctx.device = device;
        ctx.rank = rank, ctx.world = world;
        TensorMap batch = source->next(ctx);  // every batch, so the stream is where the run's is
        const int64_t first = at / o.steps_per_shard * o.steps_per_shard;
        if (!info || info->first != first) {
          info = nullptr, in_shard = 0;
          for (const tc::ShardInfo& x : man.shards)
            if (x.rank == rank && x.first == first) info = &x;
          if (tc::shard_problem(o.out, man, *info).empty()) ++skipped;  // whole: written by an earlier try
          else w = std::make_unique<tc::ShardWriter>(man, (fs::path(o.out) / tc::shard_name(rank, first)).string(), rank,
                                                     first, info->records);
        }
        if (!w) continue;
        TensorMap in;
        for (const auto& [port, src] : teacher->inputs) in[port] = batch.at(src.port).to(device);
        StepContext ev = ctx;
        ev.training = false;
        Tensor logits;
        {
          NoGradGuard ng;
          logits = model->forward(in, ev).at("logits");
        }
        SCION_CHECK(logits.size(-1) == vocab, "teacher-cache: the teacher's logits have ", logits.size(-1),
                    " columns, its config says vocab ", vocab);
        const tc::Targets t = tc::make_targets(logits.reshape({-1, vocab}).to(Device::cpu()), layout, float(tau),
                                               derive_seed(draw_seed, uint64_t(at * world + rank)));
        w->add(at, tc::targets_hash(batch.at("targets")), t);
        if (++in_shard == info->records) {  // whole: committed (renamed into place) at once
          w->commit();
          w.reset();
          ++written;
        }
        ++done;
        const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        const double rate = double(done) / std::max(dt, 1e-9);
        if (tty)
          std::printf("\r[teacher-cache rank %d] step %lld/%lld  %.0f tok/s  ETA %s   ", rank, (long long)done,
                      (long long)todo, rate * double(B * T), fmt_eta(double(todo - done) / rate).c_str());
        else if (done == todo || done % 10 == 0)
          std::printf("[teacher-cache rank %d] step %lld/%lld tokens/s %.0f\n", rank, (long long)done, (long long)todo,
                      rate * double(B * T));
        std::fflush(stdout);
      }
    }
    if (tty) std::printf("\n");
  }
  std::printf("%s: %lld shard(s) written, %lld already whole; %s, %lld bytes per token; teacher forward %.3g FLOPs\n",
              o.out.c_str(), (long long)written, (long long)skipped, tc::format_name(layout.format),
              (long long)layout.slot_bytes(), json_number(m["teacher_forward_flops"]));
  return 0;
}

}  // namespace scion::cli
