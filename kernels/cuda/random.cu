// The counter-based random fills and dropout: the CPU's random streams (scion/random.h), drawn
// on the device.
#include "cuda/common.cuh"

namespace scion::cuda {
namespace {
using namespace detail;

__global__ void normal_kernel(float* y, int64_t n, uint64_t seed, float mean, float std) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = mean + std * dev_normal(seed, uint64_t(i));
}
__global__ void uniform_kernel(float* y, int64_t n, uint64_t seed, float lo, float hi) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = lo + (hi - lo) * dev_uniform(seed, uint64_t(i));
}
__global__ void randint_kernel(int64_t* y, int64_t n, uint64_t seed, int64_t lo, uint64_t range) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    y[i] = lo + int64_t(random_bits(seed, uint64_t(i)) % range);
}
// The keep decision is the CPU's: uniform(seed, i) >= p, so masks match bit for bit.
template <class T>
__global__ void dropout_kernel(const T* x, T* y, uint8_t* mask, int64_t n, float p, float scale, uint64_t seed) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const bool keep = dev_uniform(seed, uint64_t(i)) >= p;
    mask[i] = keep;
    st(y, i, keep ? ld(x, i) * scale : 0.f);
  }
}

}  // namespace

void fill_normal(float* y, int64_t n, uint64_t seed, float mean, float std, void* stream) {
  if (n == 0) return;
  normal_kernel<<<grid1d(n), launch::kElementwiseThreads, 0, as_stream(stream)>>>(y, n, seed, mean, std);
  check_launch("cuda::fill_normal");
}
void fill_uniform(float* y, int64_t n, uint64_t seed, float lo, float hi, void* stream) {
  if (n == 0) return;
  uniform_kernel<<<grid1d(n), launch::kElementwiseThreads, 0, as_stream(stream)>>>(y, n, seed, lo, hi);
  check_launch("cuda::fill_uniform");
}
void fill_randint(int64_t* y, int64_t n, uint64_t seed, int64_t lo, int64_t hi, void* stream) {
  if (n == 0) return;
  randint_kernel<<<grid1d(n), launch::kElementwiseThreads, 0, as_stream(stream)>>>(y, n, seed, lo,
                                                                                  uint64_t(hi - lo));
  check_launch("cuda::fill_randint");
}
void dropout(const float* x, float* y, uint8_t* mask, int64_t n, float p, uint64_t seed, void* stream) {
  if (n == 0) return;
  dropout_kernel<<<grid1d(n), launch::kElementwiseThreads, 0, as_stream(stream)>>>(x, y, mask, n, p,
                                                                                  1.f / (1.f - p), seed);
  check_launch("cuda::dropout");
}
void dropout_bf16(const uint16_t* x, uint16_t* y, uint8_t* mask, int64_t n, float p, uint64_t seed,
                  void* stream) {
  if (n == 0) return;
  dropout_kernel<<<grid1d(n), launch::kElementwiseThreads, 0, as_stream(stream)>>>(x, y, mask, n, p,
                                                                                  1.f / (1.f - p), seed);
  check_launch("cuda::dropout_bf16");
}

}  // namespace scion::cuda
