// [run]: checked through its schema, then read into the typed RunSpec (run_spec.h).
#include "graph/run_spec.h"

#include <cstdlib>

#include "graph/passes.h"

namespace scion::runtime {

std::optional<CommChoice> parse_comm(std::string_view name) {
  if (name == "auto") return CommChoice::automatic;
  if (name == "single") return CommChoice::single;
  if (name == "mpi") return CommChoice::mpi;
  if (name == "nccl") return CommChoice::nccl;
  return std::nullopt;
}

const char* comm_name(CommChoice c) {
  switch (c) {
    case CommChoice::automatic: return "auto";
    case CommChoice::single: return "single";
    case CommChoice::mpi: return "mpi";
    case CommChoice::nccl: return "nccl";
  }
  return "?";
}

namespace {

std::vector<ParamSpec> run_schema(const std::string& default_name) {
  return {
      {"name", ParamType::string, Json(default_name), false, "run name (the run directory is runs/<name>)"},
      {"seed", ParamType::integer, Json(0), false, "seed of every random stream"},
      {"device", ParamType::string, Json("cpu"), false, "cpu | cuda | auto"},
      ParamSpec{"threads", ParamType::integer, Json(0), false, "CPU threads (0 = all)"}.at_least(0),
      str_param("precision", "f32",
                "matrix products: f32, or bf16 (GEMM inputs rounded to bf16, f32 accumulation; weights, optimizer "
                "state, LayerNorm, softmax and losses stay f32)")
          .one_of({"f32", "bf16"}),
      str_param("comm", "auto",
                "data-parallel communicator: auto (MPI for CPU ranks, NCCL for GPU ranks when launched with "
                "mpirun/srun; none for one process), single, mpi, nccl")
          .one_of({"auto", "single", "mpi", "nccl"}),
      int_param("zero", 0, "ZeRO stage: 1 shards the optimizer state over data-parallel ranks (0 = off)").in_range(0, 1),
      str_param("on_nonfinite", "stop",
                "a step whose loss or gradient is NaN/Inf: stop the run (exit 4) or skip the step (counted, logged)")
          .one_of({"stop", "skip"})};
}

// "cpu", "cuda", "cuda:N" or "auto", on a device this machine has; the default (cpu) when not.
DeviceChoice check_device(const std::string& name, const toml::node& at, Validator& v) {
  const bool indexed = name.rfind("cuda:", 0) == 0 && name.size() > 5 &&
                       name.find_first_not_of("0123456789", 5) == std::string::npos;
  if (name == "auto") return {true, Device::cpu()};
  if (name != "cpu" && name != "cuda" && !indexed) {
    const std::string guess = did_you_mean(name, {"cpu", "cuda", "auto"});
    v.error(v.pos(at), "'device' in [run] must be cpu, cuda, cuda:N or auto, got '" + name + "'",
            guess.empty() ? "auto picks cuda when a CUDA device is available" : "did you mean '" + guess + "'?");
    return {};
  }
  if (name == "cpu") return {};
  // A CUDA device this machine does not have: the run would stop before its first update.
  const int have = cuda_device_count();
  const long want = indexed ? std::strtol(name.c_str() + 5, nullptr, 10) : 0;
  // (A build without the CUDA backend says so: no device could run it.)
#ifdef SCION_HAVE_CUDA
  const std::string lacking = "no CUDA device";
#else
  const std::string lacking = "no CUDA device usable by this build (Scion was built without the CUDA backend)";
#endif
  if (want >= have)
    v.error(v.pos(at),
            "'device' in [run] is " + name + ", but this machine has " +
                (have == 0 ? lacking : std::to_string(have) + " CUDA device(s)") +
                (have == 0 ? "" : " (cuda:0 to cuda:" + std::to_string(have - 1) + ")"),
            "device = \"auto\" uses a CUDA device when there is one and the CPU otherwise; `scion run --device cpu` "
            "overrides the graph");
  return {false, Device::cuda(int(want))};
}

}  // namespace

RunSpec check_run(toml::table& root, const std::string& default_name, Validator& v) {
  RunSpec r;
  r.name = default_name;
  toml::table* run = root["run"].as_table();
  if (run) {
    const Json p = v.check_params(*run, run_schema(default_name), "[run]", {}, v.pos(*run));
    // A value that failed its check is absent or of another type: the default stays.
    auto get = [&](const char* key) { return p.contains(key) ? &p.at(key) : nullptr; };
    if (auto x = get("name"); x && x->is_string()) r.name = json_string(*x);
    if (auto x = get("seed"); x && x->is_number()) r.seed = uint64_t(json_int(*x));
    if (auto x = get("device"); x && x->is_string()) r.device = check_device(json_string(*x), *run->get("device"), v);
    if (auto x = get("threads"); x && x->is_number()) r.threads = int(json_int(*x));
    if (auto x = get("precision"); x && x->is_string() && json_string(*x) == "bf16") r.precision = MatmulPrecision::bf16;
    if (auto x = get("comm"); x && x->is_string()) r.comm = parse_comm(json_string(*x)).value_or(CommChoice::automatic);
    if (auto x = get("zero"); x && x->is_number_integer()) r.zero_stage = int(json_int(*x));
    if (auto x = get("on_nonfinite"); x && x->is_string()) r.skip_nonfinite = json_string(*x) == "skip";
  }
  // The run directory is runs/<name>: a name that is empty, a path, or hidden would put the
  // run's files outside runs/<name> (or straight into runs/).
  if (!file_name_ok(r.name, true)) {
    const toml::node* at = run ? run->get("name") : nullptr;
    v.error(at ? v.pos(*at) : SourcePos{v.file(), 1, 1}, "run name '" + r.name + "' cannot name a run directory",
            "use letters, digits, '_', '-' and '.', not starting with '.' (the run goes to runs/<name>; --out DIR "
            "picks another directory)");
  }
  return r;
}

}  // namespace scion::runtime
