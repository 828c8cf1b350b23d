// Forward tokens/s of GPT-2 or Llama family checkpoints (their architecture read from the
// file, as `load` reads it), each on the same batch of token ids with the same thread count:
// the speed-up of a pruned model over its dense original.
// Usage: bench_prune_forward [--threads N] [--batch B] [--seq T] [--reps R] [--family gpt2|llama] FILE...
// Prints one JSON line per file: {"file", "params", "tokens_per_s", "ms_per_batch"}.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "lm_nodes.h"
#include "scion/autograd.h"
#include "scion/threads.h"

using namespace scion;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  int threads = 1;
  int64_t batch = 8, seq = 64, reps = 20;
  std::vector<std::string> files;
  std::string family = "gpt2";
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--family" && i + 1 < argc) {
      family = argv[++i];
      if (family != "gpt2" && family != "llama") return std::fprintf(stderr, "--family is gpt2 or llama\n"), 2;
    } else if (k.rfind("--", 0) == 0 && i + 1 < argc) {
      const int64_t v = std::atoll(argv[++i]);
      if (k == "--threads") threads = int(v);
      else if (k == "--batch") batch = v;
      else if (k == "--seq") seq = v;
      else if (k == "--reps") reps = v;
      else return std::fprintf(stderr, "unknown option %s\n", k.c_str()), 2;
    } else {
      files.push_back(k);
    }
  }
  if (files.empty()) return std::fprintf(stderr, "usage: bench_prune_forward [--threads N] [--batch B] [--seq T] FILE...\n"), 2;
  set_num_threads(threads);
  for (const std::string& f : files) {
    Json p;
    for (const char* k : {"vocab", "context", "layers", "heads", "ffn"}) p[k] = Json(int64_t(1));
    p["width"] = Json(int64_t(4));
    p["dropout"] = Json(0.0);
    p["tied"] = Json(true);
    p["load"] = Json(f);
    p["frozen"] = Json(true);
    lm::DecoderNode m(Params(p, "bench", NodeContext{1, 0, 1, {}}), family);
    const int64_t V = m.architecture().vocab;
    const Tensor ids = Tensor::randint({batch, seq}, 7, 0, V);
    StepContext ctx;
    ctx.training = false;
    NoGradGuard ng;
    for (int w = 0; w < 3; ++w) m.forward({{"tokens", ids}}, ctx);  // warm-up
    // The median of `reps` timed batches: robust to a loaded machine.
    std::vector<double> ms;
    for (int64_t r = 0; r < reps; ++r) {
      const auto t0 = Clock::now();
      m.forward({{"tokens", ids}}, ctx);
      ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    const double med = ms[ms.size() / 2];
    std::printf("{\"file\": \"%s\", \"params\": %lld, \"tokens_per_s\": %.1f, \"ms_per_batch\": %.3f}\n", f.c_str(),
                (long long)m.module().parameter_count(), double(batch * seq) / (med / 1000.0), med);
  }
  return 0;
}
