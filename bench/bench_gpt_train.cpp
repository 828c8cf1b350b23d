// Tokens/s of a full GPT or Llama training step (forward, backward, clipping, AdamW) on the CPU,
// and where the time goes. bench/gpt_train_compare.sh runs this beside the same model in PyTorch.
// Usage: bench_gpt_train [--threads N] [--steps S] [--layers L --width C --heads H --context T
//                         --batch B --vocab V] [--precision f32|bf16] [--head fused|unfused]
//                         [--device cpu|cuda|cuda:N] [--print-losses 1]
//                         [--family gpt2|llama --kv-heads K --ffn F]
// --family llama: RMSNorm, SwiGLU (F units, default 8/3 of the width rounded up to 64), rotary
// positions and K key/value heads (default 2: grouped-query attention), untied head.
// --print-losses 1: one line "scion  loss step=S value=L" per step (the device check compares
// the GPU's curve with the CPU's on the same model, initialisation and batch).
// --device cuda: the model, its AdamW moments and the batch live on the GPU (every op through
// the CUDA backend table); step times include the loss read-back, which waits for the GPU. The
// GEMM-bound ceiling (timed on the CPU's GEMMs) is skipped there; scripts/device-check.sh
// computes MFU from the printed FLOPs per token.
// --head fused (the default, as loss.lm with hidden + head): ops::linear_cross_entropy, no
// [B·T, V] logits; unfused: the head's matmul, then cross_entropy on the stored logits.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>
#include <cstring>
#include <string>

#include "decoder_model.h"
#include "scion/device.h"
#include "scion/ops.h"
#include "scion/precision.h"
#include "scion/threads.h"

using namespace scion;
using Clock = std::chrono::steady_clock;

namespace {
double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// The GEMM-bound ceiling: every matrix product of one training step on the model's own
// shapes (forward, and the two backward products of each: input and weight gradient), timed
// alone at the current precision and thread count (the fastest of 5: on a shared machine noise
// only adds time, and the step is also reported by its fastest). A step cannot be faster than
// their sum.
double step_gemm_seconds(const lm::DecoderConfig& cfg, int64_t batch) {
  const int64_t N = batch * cfg.context, C = cfg.width, T = cfg.context, H = cfg.heads, hd = C / H;
  auto time = [](auto&& f) {
    std::vector<double> t;
    for (int r = 0; r < 6; ++r) {
      const auto t0 = Clock::now();
      f();
      if (r > 0) t.push_back(since(t0));  // the first builds caches
    }
    return *std::min_element(t.begin(), t.end());
  };
  // y[N, out] = x[N, in] W[out, in]^T, dx = dy W, dW = dy^T x.
  auto linear = [&](int64_t in, int64_t out) {
    const Tensor x = Tensor::randn({N, in}, 1), w = Tensor::randn({out, in}, 2), dy = Tensor::randn({N, out}, 3);
    return time([&] { ops::matmul(x, w, false, true); }) + time([&] { ops::matmul(dy, w); }) +
           time([&] { ops::matmul(dy, x, true, false); });
  };
  // scores[BH, T, T] = q k^T, out = p v; backward: two products each.
  auto attention = [&] {
    const Tensor q = Tensor::randn({batch * H, T, hd}, 4), k = Tensor::randn({batch * H, T, hd}, 5),
                 p = Tensor::randn({batch * H, T, T}, 6);
    const double qk = time([&] { ops::matmul(q, k, false, true); });
    const double pv = time([&] { ops::matmul(p, k); });
    return 3 * (qk + pv);
  };
  const int64_t F = cfg.ffn_at(0), KV = cfg.kv_heads_at(0) * hd;
  const double layer = cfg.family == "llama"
                           ? linear(C, C) + 2 * linear(C, KV) + linear(C, C) + 2 * linear(C, F) + linear(F, C) + attention()
                           : linear(C, 3 * C) + linear(C, C) + linear(C, F) + linear(F, C) + attention();
  return double(cfg.layers) * layer + linear(C, cfg.vocab);
}
}  // namespace

int run(int argc, char** argv) {
  std::string family = "gpt2";
  for (int i = 1; i + 1 < argc; i += 2)
    if (std::string(argv[i]) == "--family") family = argv[i + 1];
  lm::DecoderConfig cfg = lm::DecoderConfig::of_family(family);
  if (family == "llama") cfg.kv_heads = 2;
  cfg.layers = 4;
  cfg.width = 256;
  cfg.heads = 4;
  cfg.context = 128;
  cfg.vocab = 50304;
  int64_t batch = 8, steps = 10;
  int threads = 0;
  bool fused = true, print_losses = false;
  Device dev = Device::cpu();
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    if (k == "--device") {
      dev = Device::parse(argv[i + 1]);
      continue;
    }
    if (k == "--head") {
      fused = std::string(argv[i + 1]) != "unfused";
      continue;
    }
    if (k == "--family") continue;
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
    else if (k == "--print-losses") print_losses = v != 0;
    else if (k == "--kv-heads") cfg.kv_heads = v;
    else if (k == "--ffn") cfg.ffn = v;
  }
  if (family == "llama" && cfg.ffn == 0) cfg.ffn = (8 * cfg.width / 3 + 63) / 64 * 64;
  set_num_threads(threads);
  lm::DecoderModel model(cfg);
  model.to(dev);  // before collecting the parameters: to() rebinds them
  auto params = model.parameters();
  std::vector<Tensor> m, v;
  for (auto& p : params) {
    m.push_back(Tensor::zeros(p.shape(), DType::f32, dev));
    v.push_back(Tensor::zeros(p.shape(), DType::f32, dev));
  }
  const int64_t T = cfg.context;
  Tensor ids = Tensor::randint({batch, T}, 1, 0, cfg.vocab).to(dev);
  Tensor targets = Tensor::randint({batch, T}, 2, 0, cfg.vocab).to(dev);
  double t_fwd = 0, t_bwd = 0, t_opt = 0, t_head = 0;
  double total = 0, fastest = 1e30;
  float loss_v = 0;
  for (int64_t s = 0; s <= steps; ++s) {  // step 0 is warm-up
    const auto t0 = Clock::now();
    model.zero_grad();
    Tensor h = model.hidden(ids);
    const auto t1 = Clock::now();
    Tensor loss = fused ? ops::linear_cross_entropy(h, model.head_weight(), Tensor(), targets)
                        : ops::cross_entropy(model.logits_from_hidden(h), targets);
    const double head = since(t1);
    const double fwd = since(t0);
    const auto t2 = Clock::now();
    loss.backward();
    const double bwd = since(t2);
    const auto t3 = Clock::now();
    std::vector<Tensor> grads;
    for (auto& p : params) grads.push_back(p.grad());
    // As the runtime steps (core/runtime/executor.cpp): the global norm, and its clip factor
    // applied inside AdamW's own pass.
    ops::AdamWConfig oc;
    oc.grad_scale = ops::clip_factor(ops::global_norm(grads), 1.0f);
    oc.lr = 3e-4f;
    oc.weight_decay = 0.1f;
    for (size_t i = 0; i < params.size(); ++i) ops::adamw_step(params[i], params[i].grad(), m[i], v[i], s + 1, oc);
    const double opt = since(t3);
    loss_v = loss.item();
    if (print_losses) std::printf("scion  loss step=%lld value=%.6f\n", (long long)s, loss_v);
    if (s == 0) {
      autograd::set_backward_profiling(true);
      continue;
    }
    t_fwd += fwd;
    t_head += head;
    t_bwd += bwd;
    t_opt += opt;
    const double step_s = since(t0);
    total += step_s;
    fastest = std::min(fastest, step_s);
  }
  const double tok = double(batch * T * steps);
  struct rusage ru;  // the training's peak, before the ceiling's own buffers
  ::getrusage(RUSAGE_SELF, &ru);
  const double gemm_s = dev.is_cpu() ? step_gemm_seconds(cfg, batch) : 0.0;
  const bool emulated = matmul_precision() == MatmulPrecision::bf16 && dev.is_cpu() && !matmul_bf16_native();
  std::printf("scion  family=%s kv_heads=%lld ffn=%lld\n", cfg.family.c_str(), (long long)cfg.kv_heads_at(0),
              (long long)cfg.ffn_at(0));
  std::printf("scion  device=%s head=%s precision=%s threads=%d layers=%lld width=%lld heads=%lld T=%lld B=%lld V=%lld params=%.2fM\n", dev.str().c_str(), fused ? "fused" : "unfused",
              emulated ? "bf16(emulated in f32: no bf16 GEMM on this CPU)" : precision_name(matmul_precision()), num_threads(),
              (long long)cfg.layers, (long long)cfg.width, (long long)cfg.heads, (long long)T, (long long)batch,
              (long long)cfg.vocab, double(model.parameter_count()) / 1e6);
  // The MFU count: 6N + 6·L·C·T FLOPs per token (N = every parameter, embeddings included).
  const double flops_per_token = 6.0 * double(model.parameter_count()) +
                                 6.0 * double(cfg.layers) * double(cfg.width) * double(cfg.context);
  std::printf("scion  params_exact=%lld flops_per_token=%.0f achieved_flops=%.4e\n", (long long)model.parameter_count(),
              flops_per_token, flops_per_token * tok / total);
  std::printf("scion  tokens/s=%.0f  step=%.1f ms  (forward %.1f ms of which head+CE %.1f ms, backward %.1f ms, "
              "clip+adamw %.1f ms)  final loss %.4f\n",
              tok / total, total / double(steps) * 1e3, t_fwd / double(steps) * 1e3, t_head / double(steps) * 1e3,
              t_bwd / double(steps) * 1e3, t_opt / double(steps) * 1e3, loss_v);
  if (gemm_s > 0) {
    const double ceiling = double(batch * T) / gemm_s;
    std::printf("scion  GEMM-bound ceiling %.0f tokens/s (the step's GEMMs alone: %.1f ms): %.0f%% of it; fastest step "
                "%.1f ms = %.0f tokens/s, %.0f%% of it; peak RSS %.0f MB\n",
                ceiling, gemm_s * 1e3, 100.0 * (tok / total) / ceiling, fastest * 1e3, double(batch * T) / fastest,
                100.0 * gemm_s / fastest, double(ru.ru_maxrss) / 1024.0);
  }
  std::printf("scion  backward by op (ms/step):");
  for (const auto& ot : autograd::backward_profile())
    if (ot.seconds / double(steps) > 1e-3) std::printf(" %s %.1f;", ot.op.c_str(), ot.seconds / double(steps) * 1e3);
  std::printf("\n");
  return 0;
}

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_gpt_train: %s\n", e.what());
    return 1;
  }
}
