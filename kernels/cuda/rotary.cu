// Rotary position embedding (Hugging Face's rotate_half convention), the twin of cpu/rotary.cpp:
// one thread per (row, head, pair), the pair (x[i], x[i + D/2]) turned by its position's angle.
#include "cuda/common.cuh"

namespace scion::cuda {
namespace {
using namespace detail;

__global__ void rotary_kernel(const float* x, const float* cos, const float* sin, float* y, int64_t pairs,
                              int64_t T, int64_t H, int64_t half, float sign) {
  const int64_t idx = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (idx >= pairs) return;
  const int64_t i = idx % half, rh = idx / half;  // rh = row * H + head
  const int64_t t = (rh / H) % T;
  const int64_t base = rh * 2 * half;
  const float c = cos[t * half + i], s = sign * sin[t * half + i];
  const float a = x[base + i], b = x[base + half + i];
  y[base + i] = a * c - b * s;
  y[base + half + i] = b * c + a * s;
}

}  // namespace

void rotary(const float* x, const float* cos, const float* sin, float* y, int64_t rows, int64_t T, int64_t H,
            int64_t D, bool inverse, void* stream) {
  const int64_t half = D / 2, pairs = rows * H * half;
  if (pairs == 0) return;
  constexpr int kThreads = 256;
  const int64_t blocks = launch::ceil_div(pairs, kThreads);
  if (blocks > 0x7fffffff) throw std::invalid_argument("cuda::rotary: too many elements");
  rotary_kernel<<<unsigned(blocks), kThreads, 0, as_stream(stream)>>>(x, cos, sin, y, pairs, T, H, half,
                                                                      inverse ? -1.f : 1.f);
  check_launch("cuda::rotary");
}

}  // namespace scion::cuda
