// Fused multi-head attention on the CPU. One task per (batch, head): scores for that head
// live in a per-thread scratch buffer, reused across calls (no allocation in steady state).
// Only the per-row log-sum-exp is kept for backward, which recomputes the probabilities.
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/cpu_kernels.h"
#include "cpu/parallel.h"
#include "cpu/vec_math.h"

namespace scion::cpu {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

float* scratch(size_t n, int slot) {
  thread_local std::vector<float> buf[2];
  if (buf[slot].size() < n) buf[slot].resize(n);
  return buf[slot].data();
}

// S = scale * Q K^T with the masks applied (-inf where hidden).
void scores(const AttentionShape& s, const float* Q, const float* K, const uint8_t* km, float scale,
            float* S) {
  const int64_t T = s.T;
  gemm(s.precision, false, true, T, T, s.D, scale, Q, s.q_tstride, K, s.k_tstride, 0.f, S, T);
  for (int64_t i = 0; i < T; ++i) {
    float* row = S + i * T;
    if (s.causal)
      for (int64_t j = i + 1; j < T; ++j) row[j] = kNegInf;
    if (km)
      for (int64_t j = 0; j < T; ++j)
        if (!km[j]) row[j] = kNegInf;
  }
}

}  // namespace

void attention_forward(const AttentionShape& s, const float* q, const float* k, const float* v,
                       float* out, float* lse) {
  const int64_t T = s.T, D = s.D, H = s.H, C = H * D;
  const float scale = 1.f / std::sqrt(float(D));
  parallel_range(s.B * H, 1, [&](int64_t t0, int64_t t1) {
    float* S = scratch(size_t(T * T), 0);
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t b = task / H, h = task % H;
      const float* Q = q + b * s.q_bstride + h * D;
      const float* K = k + b * s.k_bstride + h * D;
      const float* V = v + b * s.v_bstride + h * D;
      const uint8_t* km = s.key_mask ? s.key_mask + b * T : nullptr;
      scores(s, Q, K, km, scale, S);
      float* L = lse + (b * H + h) * T;
      for (int64_t i = 0; i < T; ++i) {
        float* row = S + i * T;
        const float mx = max_scaled(row, T, 1.f);
        if (mx == kNegInf) {  // every key hidden: output zeros, and backward sees p = 0
          for (int64_t j = 0; j < T; ++j) row[j] = 0.f;
          L[i] = std::numeric_limits<float>::infinity();
          continue;
        }
        float sum = 0.f;
        for (int64_t j = 0; j < T; ++j) {
          const float e = exp_approx(row[j] - mx);
          row[j] = e;
          sum += e;
        }
        const float inv = 1.f / sum;
        for (int64_t j = 0; j < T; ++j) row[j] *= inv;
        L[i] = mx + std::log(sum);
      }
      gemm(s.precision, false, false, T, D, T, 1.f, S, T, V, s.v_tstride, 0.f, out + b * T * C + h * D, C);
    }
  });
}

void attention_backward(const AttentionShape& s, const float* q, const float* k, const float* v,
                        const float* out, const float* lse, const float* gout, float* gq, float* gk,
                        float* gv) {
  const int64_t T = s.T, D = s.D, H = s.H, C = H * D, G = s.grad_tstride > 0 ? s.grad_tstride : C;
  const float scale = 1.f / std::sqrt(float(D));
  parallel_range(s.B * H, 1, [&](int64_t t0, int64_t t1) {
    float* P = scratch(size_t(T * T), 0);
    float* dP = scratch(size_t(T * T), 1);
    for (int64_t task = t0; task < t1; ++task) {
      const int64_t b = task / H, h = task % H;
      const float* Q = q + b * s.q_bstride + h * D;
      const float* K = k + b * s.k_bstride + h * D;
      const float* V = v + b * s.v_bstride + h * D;
      const float* O = out + b * T * C + h * D;
      const float* dO = gout + b * T * C + h * D;
      const uint8_t* km = s.key_mask ? s.key_mask + b * T : nullptr;
      const float* L = lse + (b * H + h) * T;
      scores(s, Q, K, km, scale, P);
      for (int64_t i = 0; i < T; ++i) {
        float* row = P + i * T;
        for (int64_t j = 0; j < T; ++j) row[j] = exp_approx(row[j] - L[i]);
      }
      float* dQ = gq + b * T * G + h * D;
      float* dK = gk + b * T * G + h * D;
      float* dV = gv + b * T * G + h * D;
      gemm(s.precision, true, false, T, D, T, 1.f, P, T, dO, C, 0.f, dV, G);       // dV = P^T dO
      gemm(s.precision, false, true, T, T, D, 1.f, dO, C, V, s.v_tstride, 0.f, dP, T);  // dP = dO V^T
      for (int64_t i = 0; i < T; ++i) {
        float di = 0.f;  // D_i = dO_i . O_i = sum_j P_ij dP_ij
        for (int64_t d = 0; d < D; ++d) di += dO[i * C + d] * O[i * C + d];
        float* pr = P + i * T;
        float* dpr = dP + i * T;
        for (int64_t j = 0; j < T; ++j) dpr[j] = pr[j] * (dpr[j] - di);  // dS
      }
      gemm(s.precision, false, false, T, D, T, scale, dP, T, K, s.k_tstride, 0.f, dQ, G);  // dQ = scale dS K
      gemm(s.precision, true, false, T, D, T, scale, dP, T, Q, s.q_tstride, 0.f, dK, G);   // dK = scale dS^T Q
    }
  });
}

}  // namespace scion::cpu
