// Tokens/s of a full GPT training step (forward, backward, clipping, AdamW) on the CPU, and
// where the time goes. bench/gpt_train_compare.sh runs this beside the same model in PyTorch.
// Usage: bench_gpt_train [--threads N] [--steps S] [--layers L --width C --heads H --context T
//                         --batch B --vocab V] [--precision f32|bf16]
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>

#include "gpt_model.h"
#include "scion/ops.h"
#include "scion/precision.h"
#include "scion/threads.h"

using namespace scion;
using Clock = std::chrono::steady_clock;

namespace {
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }
}  // namespace

int main(int argc, char** argv) {
  lm::GptConfig cfg;
  cfg.layers = 4;
  cfg.width = 256;
  cfg.heads = 4;
  cfg.context = 128;
  cfg.vocab = 50304;
  int64_t batch = 8, steps = 10;
  int threads = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--precision") {
      set_matmul_precision(parse_matmul_precision(argv[i + 1]));
      continue;
    }
    const int64_t v = std::atoll(argv[i + 1]);
    if (k == "--threads") threads = int(v);
    else if (k == "--steps") steps = v;
    else if (k == "--layers") cfg.layers = v;
    else if (k == "--width") cfg.width = v;
    else if (k == "--heads") cfg.heads = v;
    else if (k == "--context") cfg.context = v;
    else if (k == "--batch") batch = v;
    else if (k == "--vocab") cfg.vocab = v;
  }
  set_num_threads(threads);
  lm::GptModel model(cfg);
  auto params = model.parameters();
  std::vector<Tensor> m, v;
  for (auto& p : params) {
    m.push_back(Tensor::zeros(p.shape()));
    v.push_back(Tensor::zeros(p.shape()));
  }
  const int64_t T = cfg.context;
  Tensor ids = Tensor::randint({batch, T}, 1, 0, cfg.vocab);
  Tensor targets = Tensor::randint({batch, T}, 2, 0, cfg.vocab);
  double t_fwd = 0, t_bwd = 0, t_opt = 0, t_head = 0;
  double total = 0;
  float loss_v = 0;
  for (int64_t s = 0; s <= steps; ++s) {  // step 0 is warm-up
    const auto t0 = Clock::now();
    model.zero_grad();
    Tensor h = model.hidden(ids);
    const auto t1 = Clock::now();
    Tensor loss = ops::cross_entropy(model.logits_from_hidden(h), targets);
    const double head = since(t1);
    const double fwd = since(t0);
    const auto t2 = Clock::now();
    loss.backward();
    const double bwd = since(t2);
    const auto t3 = Clock::now();
    std::vector<Tensor> grads;
    for (auto& p : params) grads.push_back(p.grad());
    ops::clip_grad_norm(grads, 1.0f);
    ops::AdamWConfig oc;
    oc.lr = 3e-4f;
    oc.weight_decay = 0.1f;
    for (size_t i = 0; i < params.size(); ++i) ops::adamw_step(params[i], params[i].grad(), m[i], v[i], s + 1, oc);
    const double opt = since(t3);
    loss_v = loss.item();
    if (s == 0) {
      autograd::set_backward_profiling(true);
      continue;
    }
    t_fwd += fwd;
    t_head += head;
    t_bwd += bwd;
    t_opt += opt;
    total += since(t0);
  }
  const double tok = double(batch * T * steps);
  std::printf("scion  precision=%s threads=%d layers=%lld width=%lld heads=%lld T=%lld B=%lld V=%lld params=%.2fM\n", precision_name(matmul_precision()), num_threads(),
              (long long)cfg.layers, (long long)cfg.width, (long long)cfg.heads, (long long)T, (long long)batch,
              (long long)cfg.vocab, double(model.parameter_count()) / 1e6);
  std::printf("scion  tokens/s=%.0f  step=%.1f ms  (forward %.1f ms of which head+CE %.1f ms, backward %.1f ms, "
              "clip+adamw %.1f ms)  final loss %.4f\n",
              tok / total, total / double(steps) * 1e3, t_fwd / double(steps) * 1e3, t_head / double(steps) * 1e3,
              t_bwd / double(steps) * 1e3, t_opt / double(steps) * 1e3, loss_v);
  std::printf("scion  backward by op (ms/step):");
  for (const auto& ot : autograd::backward_profile())
    if (ot.seconds / double(steps) > 1e-3) std::printf(" %s %.1f;", ot.op.c_str(), ot.seconds / double(steps) * 1e3);
  std::printf("\n");
  return 0;
}
