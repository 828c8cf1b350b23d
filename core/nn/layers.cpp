// Linear, LayerNorm and Embedding.
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

LayerNorm::LayerNorm(int64_t dim, float eps_) : eps(eps_) {
  register_parameter("weight", &weight, Tensor::ones({dim}));
  register_parameter("bias", &bias, Tensor::zeros({dim}));
  register_buffer("gate", &gate);
  register_buffer("gate.kept", &kept_gate);
}

Tensor LayerNorm::forward(const Tensor& x) const {
  if (gate.defined()) return ops::layernorm_masked(x, weight, bias, gate, eps);
  if (kept_gate.defined()) return ops::layernorm_kept(x, weight, bias, kept_gate, eps);
  return ops::layernorm(x, weight, bias, eps);
}

Embedding::Embedding(int64_t count, int64_t dim, InitConfig init) {
  register_parameter("weight", &weight, Tensor::randn({count, dim}, init.seed, 0.f, init.std));
}

Tensor Embedding::forward(const Tensor& ids) const { return ops::embedding(weight, ids); }

}  // namespace scion::nn
