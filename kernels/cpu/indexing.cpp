// Indexing kernels: strided assignment, index_select and its backward, offset gathers,
// where/masked_fill, the max's backward scatter. The twins are in cuda/indexing.cu.
// Every output element is written by one task; accumulations run in index order.
#include <cstring>
#include <vector>

#include "cpu/cpu_kernels.h"
#include "cpu/parallel.h"

namespace scion::cpu {

void strided_assign(void* dst, const int64_t* dst_strides, const void* src, const int64_t* shape, int ndim,
                    size_t es) {
  int64_t n = 1;
  for (int d = 0; d < ndim; ++d) n *= shape[d];
  const char* sp = static_cast<const char*>(src);
  char* dp = static_cast<char*>(dst);
  std::vector<int64_t> idx(size_t(ndim), 0);
  for (int64_t i = 0; i < n; ++i) {
    int64_t off = 0;
    for (int d = 0; d < ndim; ++d) off += idx[size_t(d)] * dst_strides[d];
    std::memcpy(dp + off * int64_t(es), sp + i * int64_t(es), es);
    for (int d = ndim - 1; d >= 0; --d) {
      if (++idx[size_t(d)] < shape[d]) break;
      idx[size_t(d)] = 0;
    }
  }
}

void index_select(const float* x, const int64_t* idx, float* y, int64_t outer, int64_t n, int64_t k, int64_t inner) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < k; ++i)
      std::memcpy(y + (o * k + i) * inner, x + (o * n + idx[i]) * inner, size_t(inner) * sizeof(float));
}

void index_add(const float* gy, const int64_t* idx, float* gx, int64_t outer, int64_t n, int64_t k, int64_t inner) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < inner; ++j) gx[(o * n + idx[i]) * inner + j] += gy[(o * k + i) * inner + j];
}

void take(const float* x, const int64_t* offsets, float* y, int64_t total) {
  for (int64_t e = 0; e < total; ++e) y[e] = x[offsets[e]];
}

void take_backward(const float* gy, const int64_t* offsets, float* gx, int64_t lead, int64_t len, int64_t trail) {
  // Element order (lead, len, trail) as the gather's own loop; a collision can only happen
  // between two positions of one (lead, trail), which this order also adds in len order.
  const int64_t total = lead * len * trail;
  for (int64_t e = 0; e < total; ++e) gx[offsets[e]] += gy[e];
}

void where(const uint8_t* cp, const int64_t* cs, const float* x, const int64_t* xs, float xv, const float* y,
           const int64_t* ys, float yv, float* out, const int64_t* shape, int nd) {
  int64_t total = 1;
  for (int d = 0; d < nd; ++d) total *= shape[d];
  std::vector<int64_t> zero(size_t(nd > 0 ? nd : 1), 0);
  if (!x) xs = zero.data();
  if (!y) ys = zero.data();
  const float* xp = x ? x : &xv;
  const float* yp = y ? y : &yv;
  std::vector<int64_t> idx(size_t(nd), 0);
  int64_t co = 0, xo = 0, yo = 0;
  for (int64_t e = 0; e < total; ++e) {
    out[e] = cp[co] ? xp[xo] : yp[yo];
    for (int d = nd - 1; d >= 0; --d) {
      const size_t u = size_t(d);
      if (++idx[u] < shape[u]) {
        co += cs[u];
        xo += xs[u];
        yo += ys[u];
        break;
      }
      co -= cs[u] * (shape[u] - 1);
      xo -= xs[u] * (shape[u] - 1);
      yo -= ys[u] * (shape[u] - 1);
      idx[u] = 0;
    }
  }
}

void max_backward(const float* gy, const int64_t* ip, float* gx, int64_t outer, int64_t n, int64_t inner) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) gx[(o * n + ip[o * inner + j]) * inner + j] = gy[o * inner + j];
}

}  // namespace scion::cpu
