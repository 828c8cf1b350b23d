// Rotary position embedding (Su et al. 2021) in Hugging Face's convention (rotate_half over the
// two halves of each head), and its cos/sin tables, with Llama 3's frequency scaling.
#include <cmath>

#include "ops/common.h"

namespace scion::ops {
using namespace detail;

std::vector<float> rope_inv_freq(int64_t head_dim, double theta, const std::optional<Llama3RopeScaling>& llama3) {
  const char* op = "rope_inv_freq";
  if (head_dim <= 0 || head_dim % 2 != 0) fail(op, "head_dim must be positive and even, got " + std::to_string(head_dim));
  if (!(theta > 0)) fail(op, "rope_theta must be positive, got " + std::to_string(theta));
  const int64_t half = head_dim / 2;
  std::vector<double> f(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) f[size_t(i)] = 1.0 / std::pow(theta, double(2 * i) / double(head_dim));
  if (llama3) {
    // transformers' rope_type "llama3": wavelengths longer than the original context / low_freq_factor
    // are slowed by `factor`, those shorter than original / high_freq_factor kept, and the band
    // between blended linearly in original / wavelength.
    const Llama3RopeScaling& s = *llama3;
    if (!(s.factor > 0) || !(s.high_freq_factor > s.low_freq_factor) || !(s.low_freq_factor > 0) ||
        s.original_max_position_embeddings <= 0)
      fail(op, "llama3 rope_scaling needs factor > 0, high_freq_factor > low_freq_factor > 0 and "
               "original_max_position_embeddings > 0");
    const double old_len = double(s.original_max_position_embeddings);
    const double low_wavelen = old_len / s.low_freq_factor, high_wavelen = old_len / s.high_freq_factor;
    const double pi = std::acos(-1.0);
    for (double& inv : f) {
      const double wavelen = 2 * pi / inv;
      if (wavelen > low_wavelen) {
        inv /= s.factor;
      } else if (wavelen >= high_wavelen) {
        const double smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
        inv = (1 - smooth) * inv / s.factor + smooth * inv;
      }
    }
  }
  return std::vector<float>(f.begin(), f.end());
}

RopeTables rope_tables(int64_t head_dim, double theta, int64_t positions, int64_t offset,
                       const std::optional<Llama3RopeScaling>& llama3, Device device) {
  if (positions < 0 || offset < 0)
    fail("rope_tables", "positions and offset must be >= 0, got " + std::to_string(positions) + " and " +
                            std::to_string(offset));
  const std::vector<float> inv = rope_inv_freq(head_dim, theta, llama3);
  const int64_t half = head_dim / 2;
  std::vector<float> c(size_t(positions * half)), s(c.size());
  for (int64_t t = 0; t < positions; ++t)
    for (int64_t i = 0; i < half; ++i) {
      // The angle as transformers forms it (an f32 product of position and frequency), then
      // its cos and sin rounded once.
      const float angle = float(t + offset) * inv[size_t(i)];
      c[size_t(t * half + i)] = float(std::cos(double(angle)));
      s[size_t(t * half + i)] = float(std::sin(double(angle)));
    }
  return {Tensor::from_vector(c, {positions, half}, device), Tensor::from_vector(s, {positions, half}, device)};
}

Tensor rotary(const Tensor& x, const Tensor& cos, const Tensor& sin) {
  const char* op = "rotary";
  const Backend& be = backend_for(op, {&x, &cos, &sin});
  check_float(op, x, "input");
  check_float(op, cos, "cos");
  check_float(op, sin, "sin");
  if (x.dim() < 3) fail(op, "input must be [.., T, H, D], got " + x.desc());
  const int64_t T = x.size(-3), H = x.size(-2), D = x.size(-1);
  if (D % 2 != 0) fail(op, "head dimension D of " + x.desc() + " must be even");
  if (cos.shape() != Shape{T, D / 2} || sin.shape() != Shape{T, D / 2})
    fail(op, "cos " + cos.desc() + " and sin " + sin.desc() + " must both be [" + std::to_string(T) + ", " +
                 std::to_string(D / 2) + "] for input " + x.desc());
  if (cos.requires_grad() || sin.requires_grad())
    fail(op, "cos and sin are tables of constants (rope_tables); they take no gradient");
  Tensor X = dense(x), C = dense(cos), S = dense(sin);
  const int64_t rows = (T && H && D) ? x.numel() / (H * D) : 0;
  const Device dev = x.device();
  Tensor y = Tensor::empty(x.shape(), DType::f32, dev);
  be.rotary(fptr(X), fptr(C), fptr(S), fptr(y), rows, T, H, D, false);
  if (autograd::needs_grad({&x})) {
    autograd::record(op, y, {x}, [=](const Tensor& g) {
      const Backend& bb = backend_for("rotary", {&C, &g});
      Tensor G = dense(g);
      Tensor gx = Tensor::empty(G.shape(), DType::f32, dev);
      bb.rotary(fptr(G), fptr(C), fptr(S), fptr(gx), rows, T, H, D, true);  // the transpose: turn back
      return std::vector<Tensor>{gx};
    });
  }
  return y;
}

}  // namespace scion::ops
