// AdamW, PyTorch's order: p *= 1 - lr*wd, then the bias-corrected Adam step. The multi-tensor
// form updates up to kAdamTensorsPerLaunch parameters per launch (a GPT-2 has ~150 parameter
// tensors; one launch each would be launch-bound), and can write the bf16 compute copy of each
// weight in the same pass.
#include <vector>

#include "cuda/common.cuh"

namespace scion::cuda {
namespace {
using namespace detail;
constexpr int K = kAdamTensorsPerLaunch;

// Passed by value as the kernel parameter (about 1.5 KB, under the 4 KB classic limit).
struct AdamBatch {
  float* p[K];
  const float* g[K];
  float* m[K];
  float* v[K];
  uint16_t* pb[K];
  int64_t n[K];
  float wd[K];
  int64_t block_start[K + 1];
  int count;
};

__global__ void adamw_kernel(AdamBatch b, float lr, float beta1, float beta2, float eps, float step_size,
                             float inv_sqrt_bc2, const float* grad_scale, float host_grad_scale) {
  // Which tensor this block belongs to: a short linear scan of the block prefix sums.
  const int t = launch::adam_tensor_of_block(b.block_start, b.count, int64_t(blockIdx.x));
  const int64_t chunk = int64_t(blockIdx.x) - b.block_start[t];
  const int64_t i0 = chunk * launch::kAdamChunk;
  const int64_t i1 = i0 + launch::kAdamChunk < b.n[t] ? i0 + launch::kAdamChunk : b.n[t];
  const float gs = grad_scale ? *grad_scale * host_grad_scale : host_grad_scale;
  const float decay = 1.f - lr * b.wd[t];
  float* p = b.p[t];
  const float* g = b.g[t];
  float* m = b.m[t];
  float* v = b.v[t];
  uint16_t* pb = b.pb[t];
  for (int64_t i = i0 + threadIdx.x; i < i1; i += blockDim.x) {
    const float gi = g[i] * gs;
    const float mi = beta1 * m[i] + (1.f - beta1) * gi;
    const float vi = beta2 * v[i] + (1.f - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const float denom = sqrtf(vi) * inv_sqrt_bc2 + eps;
    const float pi = p[i] * decay - step_size * mi / denom;
    p[i] = pi;
    if (pb) pb[i] = f32_to_bf16(pi);
  }
}

}  // namespace

void adamw_multi(const AdamTensor* tensors, int count, float lr, float beta1, float beta2, float eps, float bc1,
                 float bc2, const float* grad_scale, void* stream, float host_grad_scale) {
  const cudaStream_t s = as_stream(stream);
  std::vector<int64_t> sizes(size_t(count > 0 ? count : 0));
  for (int i = 0; i < count; ++i) sizes[size_t(i)] = tensors[i].n;
  std::vector<int64_t> block_start;
  const std::vector<int> first = launch::adam_launches(sizes, K, block_start);
  const float step_size = lr / bc1;
  const float inv_sqrt_bc2 = 1.f / std::sqrt(bc2);
  for (size_t l = 0; l + 1 < first.size(); ++l) {
    AdamBatch b{};
    b.count = first[l + 1] - first[l];
    int64_t blocks = 0;
    for (int j = 0; j < b.count; ++j) {
      const AdamTensor& t = tensors[first[l] + j];
      b.p[j] = t.p;
      b.g[j] = t.g;
      b.m[j] = t.m;
      b.v[j] = t.v;
      b.pb[j] = t.p_bf16;
      b.n[j] = t.n;
      b.wd[j] = t.weight_decay;
      b.block_start[j] = block_start[size_t(first[l] + j)];
      blocks = b.block_start[j] + launch::ceil_div(t.n, launch::kAdamChunk);
    }
    b.block_start[b.count] = blocks;
    if (blocks == 0) continue;
    adamw_kernel<<<unsigned(blocks), 256, 0, s>>>(b, lr, beta1, beta2, eps, step_size, inv_sqrt_bc2, grad_scale,
                                                  host_grad_scale);
    check_launch("cuda::adamw_multi");
  }
}

void adamw(float* p, const float* g, float* m, float* v, int64_t n, float lr, float beta1, float beta2, float eps,
           float weight_decay, float bc1, float bc2, float grad_scale, void* stream) {
  const AdamTensor t{p, g, m, v, nullptr, n, weight_decay};
  adamw_multi(&t, 1, lr, beta1, beta2, eps, bc1, bc2, nullptr, stream, grad_scale);
}

}  // namespace scion::cuda
