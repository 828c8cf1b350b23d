// Linear, Norm (LayerNorm, RMSNorm) and Embedding.
#include "scion/nn.h"
#include "scion/random.h"

namespace scion::nn {

Linear::Linear(int64_t in, int64_t out, bool has_bias, bool conv1d, InitConfig init)
    : in_features(in), out_features(out), conv1d_layout(conv1d) {
  Shape ws = conv1d ? Shape{in, out} : Shape{out, in};
  register_parameter("weight", &weight, Tensor::randn(ws, init.seed, 0.f, init.std));
  if (has_bias) register_parameter("bias", &bias, Tensor::zeros({out}));
}

Tensor Linear::forward(const Tensor& x) const { return ops::linear(x, weight, bias, conv1d_layout); }

Norm::Norm(int64_t dim, float eps_, NormKind kind_) : kind(kind_), eps(eps_) {
  register_parameter("weight", &weight, Tensor::ones({dim}));
  if (kind == NormKind::layer_norm) register_parameter("bias", &bias, Tensor::zeros({dim}));
  register_buffer("gate", &gate);
  register_buffer("gate.kept", &kept_gate);
}

namespace {
// RMSNorm under a hidden gate: mean(x²) weighted by `weights` (MSG: the gate itself; CoFi: 1
// where the gate is not 0), the output multiplied by the gate. Composed from ops, so the
// gradients are theirs; it runs only while a gate is set.
Tensor rms_norm_weighted(const Tensor& x, const Tensor& weight, const Tensor& gate, const Tensor& weights, float eps) {
  const int64_t last = x.dim() - 1;
  Tensor ms = ops::div(ops::sum(ops::mul(ops::mul(x, x), weights), {last}, true), ops::sum_all(weights));
  return ops::mul(ops::mul(x, ops::rsqrt(ops::add_scalar(ms, eps))), ops::mul(weight, gate));
}
Tensor nonzero(const Tensor& gate) {
  std::vector<float> v = gate.to_vector();
  for (float& g : v) g = g != 0.f ? 1.f : 0.f;
  return Tensor::from_vector(v, gate.shape(), gate.device());
}
}  // namespace

Tensor Norm::forward(const Tensor& x) const {
  if (kind == NormKind::rms_norm) {
    if (gate.defined()) return rms_norm_weighted(x, weight, gate, gate, eps);
    if (kept_gate.defined()) return rms_norm_weighted(x, weight, kept_gate, nonzero(kept_gate), eps);
    return ops::rms_norm(x, weight, eps);
  }
  if (gate.defined()) return ops::layernorm_masked(x, weight, bias, gate, eps);
  if (kept_gate.defined()) return ops::layernorm_kept(x, weight, bias, kept_gate, eps);
  return ops::layernorm(x, weight, bias, eps);
}

Embedding::Embedding(int64_t count, int64_t dim, InitConfig init) {
  register_parameter("weight", &weight, Tensor::randn({count, dim}, init.seed, 0.f, init.std));
}

Tensor Embedding::forward(const Tensor& ids) const { return ops::embedding(weight, ids); }

}  // namespace scion::nn
