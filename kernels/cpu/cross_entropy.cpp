// Fused softmax cross-entropy over large vocabularies: one pass for max and log-sum-exp per
// row, probabilities recomputed in backward instead of stored.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#include "cpu/cpu_kernels.h"
#include "cpu/parallel.h"
#include "cpu/vec_math.h"

namespace scion::cpu {
namespace {

inline float row_lse(const float* x, int64_t V, float inv_t) {
  const float mx = max_scaled(x, V, inv_t);
  // f64 sum (vec_math.h) and f64 log: the loss is l - x[t], so lse's rounding is the loss's.
  return float(double(mx) + std::log(sum_exp(x, V, inv_t, mx)));
}

}  // namespace

int64_t cross_entropy_forward(const float* logits, const int64_t* targets, int64_t rows, int64_t V,
                              int64_t ignore_index, float* loss_rows, float* lse, int64_t* bad_row) {
  *bad_row = -1;
  int64_t count = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t t = targets[r];
    if (t == ignore_index) continue;
    if (t < 0 || t >= V) {
      *bad_row = r;
      return 0;
    }
    ++count;
  }
  parallel_range(rows, grain_for(3 * V), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* x = logits + r * V;
      const float l = row_lse(x, V, 1.f);
      lse[r] = l;
      const int64_t t = targets[r];
      loss_rows[r] = t == ignore_index ? 0.f : l - x[t];
    }
  });
  return count;
}

void cross_entropy_backward(const float* logits, const int64_t* targets, const float* lse, int64_t rows,
                            int64_t V, int64_t ignore_index, float scale, float* g) {
  parallel_range(rows, grain_for(2 * V), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* gr = g + r * V;
      const int64_t t = targets[r];
      if (t == ignore_index) {
        for (int64_t i = 0; i < V; ++i) gr[i] = 0.f;
        continue;
      }
      const float* x = logits + r * V;
      const float l = lse[r];
      for (int64_t i = 0; i < V; ++i) gr[i] = scale * exp_approx(x[i] - l);
      gr[t] -= scale;
    }
  });
}

namespace {

// One row of cross_entropy_rows: the exponentials stored in place while they are summed
// (sum_exp_store: the same bits as row_lse's sum_exp, so the loss is cross_entropy_forward's),
// then one scaling pass writes the gradient where Mode asks for it. The rounded gradient is
// an operand of the bf16 GEMMs (pack_bf16_matrix's form): bf16 bits (Op = uint16_t) or, where
// they are emulated, the rounded values as f32 (Op = float; gb may then be x itself).
enum class RowGrad { f32, bf16, both };
inline uint16_t as_operand(float g, uint16_t*) { return f32_to_bf16(g); }
inline float as_operand(float g, float*) { return bf16_to_f32(f32_to_bf16(g)); }
template <RowGrad Mode, class Op>
float fused_row(float* x, int64_t V, int64_t t, bool ignored, float scale, Op* gb, float* loss) {
  const float mx = max_scaled(x, V, 1.f);
  const float xt = ignored ? 0.f : x[t];
  const double sum = sum_exp_store(x, V, 1.f, mx, x);
  const float l = float(double(mx) + std::log(sum));
  *loss = ignored ? 0.f : l - xt;
  if (ignored) {
    if constexpr (Mode != RowGrad::bf16) std::fill(x, x + V, 0.f);
    if constexpr (Mode != RowGrad::f32) std::fill(gb, gb + V, Op(0));
    return l;
  }
  const float c = float(double(scale) / sum);
  const float et = x[t];
  for (int64_t j = 0; j < V; ++j) {
    const float g = x[j] * c;
    if constexpr (Mode != RowGrad::bf16) x[j] = g;
    if constexpr (Mode != RowGrad::f32) gb[j] = as_operand(g, gb);
  }
  const float gt = et * c - scale;
  if constexpr (Mode != RowGrad::bf16) x[t] = gt;
  if constexpr (Mode != RowGrad::f32) gb[t] = as_operand(gt, gb);
  return l;
}

template <class Op>
void rows_of(float* logits, const int64_t* targets, int64_t rows, int64_t V, int64_t ignore_index, float scale,
             float* loss_rows, float* lse, bool grad_f32, Op* grad_bf16) {
  parallel_range(rows, grain_for(4 * V), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      float* x = logits + r * V;
      const int64_t t = targets[r];
      const bool ignored = t == ignore_index;
      Op* gb = grad_bf16 ? grad_bf16 + r * V : nullptr;
      if (!grad_f32 && !grad_bf16) {
        const float l = row_lse(x, V, 1.f);
        lse[r] = l;
        loss_rows[r] = ignored ? 0.f : l - x[t];
      } else if (!grad_bf16) {
        lse[r] = fused_row<RowGrad::f32>(x, V, t, ignored, scale, gb, loss_rows + r);
      } else if (!grad_f32) {
        lse[r] = fused_row<RowGrad::bf16>(x, V, t, ignored, scale, gb, loss_rows + r);
      } else {
        lse[r] = fused_row<RowGrad::both>(x, V, t, ignored, scale, gb, loss_rows + r);
      }
    }
  });
}

}  // namespace

void cross_entropy_rows(float* logits, const int64_t* targets, int64_t rows, int64_t V, int64_t ignore_index,
                        float scale, float* loss_rows, float* lse, bool grad_f32, void* grad_bf16) {
  if (bf16_operand_bytes() == 2)
    rows_of(logits, targets, rows, V, ignore_index, scale, loss_rows, lse, grad_f32,
            static_cast<uint16_t*>(grad_bf16));
  else
    rows_of(logits, targets, rows, V, ignore_index, scale, loss_rows, lse, grad_f32, static_cast<float*>(grad_bf16));
}

void soft_cross_entropy_forward(const float* x, const float* t, const uint8_t* mask, int64_t rows,
                                int64_t V, float T, bool kl, float* loss_rows, float* lse_x,
                                float* lse_t) {
  const float inv_t = 1.f / T;
  parallel_range(rows, grain_for(8 * V), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const float* xr = x + r * V;
      const float* tr = t + r * V;
      const float lx = row_lse(xr, V, inv_t), lt = row_lse(tr, V, inv_t);
      lse_x[r] = lx;
      lse_t[r] = lt;
      if (mask && !mask[r]) {
        loss_rows[r] = 0.f;
        continue;
      }
      // Summed as sum_exp sums (vec_math.h): one f64 running sum does not vectorise.
      const double acc = kl ? blocked_sum(V, [&](int64_t i) {
        const float logp = tr[i] * inv_t - lt, logq = xr[i] * inv_t - lx;
        return exp_approx(logp) * (logp - logq);
      })
                            : blocked_sum(V, [&](int64_t i) {
                                const float logp = tr[i] * inv_t - lt, logq = xr[i] * inv_t - lx;
                                return -exp_approx(logp) * logq;
                              });
      loss_rows[r] = float(acc);
    }
  });
}

void soft_cross_entropy_backward(const float* x, const float* t, const uint8_t* mask,
                                 const float* lse_x, const float* lse_t, const float* loss_rows,
                                 int64_t rows, int64_t V, float T, bool kl, float scale, float* gx,
                                 float* gt) {
  const float inv_t = 1.f / T;
  const float c = scale * inv_t;
  parallel_range(rows, grain_for(8 * V), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const bool on = !mask || mask[r];
      float* gxr = gx ? gx + r * V : nullptr;
      float* gtr = gt ? gt + r * V : nullptr;
      if (!on) {
        if (gxr) for (int64_t i = 0; i < V; ++i) gxr[i] = 0.f;
        if (gtr) for (int64_t i = 0; i < V; ++i) gtr[i] = 0.f;
        continue;
      }
      const float* xr = x + r * V;
      const float* tr = t + r * V;
      const float lx = lse_x[r], lt = lse_t[r], val = loss_rows[r];
      for (int64_t i = 0; i < V; ++i) {
        const float logp = tr[i] * inv_t - lt;
        const float logq = xr[i] * inv_t - lx;
        const float p = exp_approx(logp), q = exp_approx(logq);
        if (gxr) gxr[i] = c * (q - p);
        if (gtr) gtr[i] = c * p * ((kl ? logp - logq : -logq) - val);
      }
    }
  });
}

}  // namespace scion::cpu
