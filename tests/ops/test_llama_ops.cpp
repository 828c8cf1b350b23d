// Values of the Llama-family ops against hand-written double-precision references: RMSNorm,
// SiLU / SwiGLU, rotary position embedding (with Llama 3's frequency scaling) and attention
// with grouped key/value heads. Their gradients are checked in test_gradcheck.cpp, their CUDA
// twins in test_op_devices.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "ops/test_util.h"

using namespace scion;
using namespace scion::test;

// =============================== RMSNorm =========================================================

TEST(RmsNorm, MatchesHandComputation) {
  const int64_t rows = 6, n = 10;
  Tensor x = ops::add_scalar(randn({3, 2, n}, 201, 2.f), 0.3f);
  Tensor w = uniform({n}, 202, 0.5f, 1.5f);
  const double eps = 1e-6;
  const DVec xv = to_double(x), wv = to_double(w);
  DVec ref(xv.size());
  for (int64_t r = 0; r < rows; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += xv[size_t(r * n + i)] * xv[size_t(r * n + i)];
    const double rs = 1.0 / std::sqrt(ss / double(n) + eps);
    for (int64_t i = 0; i < n; ++i) ref[size_t(r * n + i)] = xv[size_t(r * n + i)] * rs * wv[size_t(i)];
  }
  Tensor y = ops::rms_norm(x, w, float(eps));
  EXPECT_EQ(y.shape(), x.shape());
  SCION_EXPECT_CLOSE(y, ref, 1e-6, 1e-5);
  // a strided input: the same rows read through a transpose
  Tensor xt = x.transpose(0, 1).contiguous().transpose(0, 1);
  SCION_EXPECT_CLOSE(ops::rms_norm(xt, w, float(eps)), ref, 1e-6, 1e-5);
}

TEST(RmsNorm, ThreeByHand) {
  // x = [1, 2, 2]: mean(x^2) = 3, y = x / sqrt(3 + eps) * w
  Tensor x = Tensor::from_vector({1.f, 2.f, 2.f}, {1, 3});
  Tensor w = Tensor::from_vector({1.f, 0.5f, 2.f}, {3});
  const double rs = 1.0 / std::sqrt(3.0 + 1e-5);
  SCION_EXPECT_CLOSE(ops::rms_norm(x, w, 1e-5f), (DVec{rs, rs, 4 * rs}), 1e-7, 1e-6);
}

TEST(RmsNorm, RejectsWrongWeight) {
  EXPECT_THROW(ops::rms_norm(randn({2, 4}, 1), randn({3}, 2)), Error);
}

// =============================== SiLU, SwiGLU ====================================================

TEST(Silu, MatchesSigmoidFormula) {
  Tensor x = ops::mul_scalar(randn({5, 13}, 211), 4.f);
  const DVec xv = to_double(x);
  DVec ref(xv.size());
  for (size_t i = 0; i < xv.size(); ++i) ref[i] = xv[i] / (1.0 + std::exp(-xv[i]));
  SCION_EXPECT_CLOSE(ops::silu(x), ref, 1e-6, 1e-5);
  // far tails: silu(-100) = -0 (no NaN from exp overflow), silu(100) = 100
  SCION_EXPECT_CLOSE(ops::silu(Tensor::from_vector({-100.f, 0.f, 100.f}, {3})), (DVec{0, 0, 100}), 1e-6, 1e-6);
}

TEST(Silu, SwigluIsGatedProduct) {
  Tensor gate = ops::mul_scalar(randn({3, 8}, 212), 2.f), up = randn({3, 8}, 213);
  const DVec gv = to_double(gate), uv = to_double(up);
  DVec ref(gv.size());
  for (size_t i = 0; i < gv.size(); ++i) ref[i] = gv[i] / (1.0 + std::exp(-gv[i])) * uv[i];
  SCION_EXPECT_CLOSE(ops::swiglu(gate, up), ref, 1e-6, 1e-5);
}

// =============================== rotary position embedding =======================================

// out = x * cat(cos, cos) + rotate_half(x) * cat(sin, sin), rotate_half(x) = cat(-x2, x1): Hugging
// Face's apply_rotary_pos_emb, written out in double with angles (offset + t) * theta^(-2i/D).
TEST(Rotary, MatchesRotateHalfReference) {
  const int64_t B = 2, T = 5, H = 3, D = 8, half = D / 2, offset = 3;
  const double theta = 10000.0;
  Tensor x = randn({B, T, H, D}, 221);
  const ops::RopeTables tab = ops::rope_tables(D, theta, T, offset);
  EXPECT_EQ(tab.cos.shape(), (Shape{T, half}));
  const DVec xv = to_double(x);
  DVec ref(xv.size());
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t d = 0; d < D; ++d) {
          const int64_t i = d % half;
          const double angle = double(t + offset) * std::pow(theta, -double(2 * i) / double(D));
          const size_t row = size_t(((b * T + t) * H + h) * D);
          const double rot = d < half ? -xv[row + size_t(d + half)] : xv[row + size_t(d - half)];
          ref[row + size_t(d)] = xv[row + size_t(d)] * std::cos(angle) + rot * std::sin(angle);
        }
  SCION_EXPECT_CLOSE(ops::rotary(x, tab.cos, tab.sin), ref, 2e-6, 1e-5);
  // the same through a strided view of x ([B, H, T, D] storage seen as [B, T, H, D])
  Tensor xs = x.transpose(1, 2).contiguous().transpose(1, 2);
  SCION_EXPECT_CLOSE(ops::rotary(xs, tab.cos, tab.sin), ref, 2e-6, 1e-5);
}

TEST(Rotary, OffsetTablesAreRowsOfTheLongerTable) {
  const ops::RopeTables all = ops::rope_tables(16, 500000.0, 12, 0, ops::Llama3RopeScaling{});
  const ops::RopeTables tail = ops::rope_tables(16, 500000.0, 5, 7, ops::Llama3RopeScaling{});
  SCION_EXPECT_CLOSE(tail.cos, to_double(all.cos.narrow(0, 7, 5)), 0, 0);
  SCION_EXPECT_CLOSE(tail.sin, to_double(all.sin.narrow(0, 7, 5)), 0, 0);
}

TEST(Rotary, InverseTurnsBackAndKeepsNorm) {
  Tensor x = randn({1, 6, 2, 10}, 222);
  const ops::RopeTables tab = ops::rope_tables(10, 10000.0, 6, 0);
  Tensor y = ops::rotary(x, tab.cos, tab.sin);
  // each pair keeps its length, and turning by -angle (sin negated) returns x
  SCION_EXPECT_CLOSE(ops::sum_all(ops::mul(y, y)), to_double(ops::sum_all(ops::mul(x, x))), 1e-4, 1e-5);
  SCION_EXPECT_CLOSE(ops::rotary(y, tab.cos, ops::neg(tab.sin)), to_double(x), 1e-6, 1e-5);
}

// Llama 3.2's rope_scaling (factor 32, low 1, high 4, original 8192) at theta 500000, head_dim 16:
// the eight frequencies span all three bands (wavelengths 6.3 .. 609226 around 2048 and 8192).
// Reference values computed once, independently, with numpy in float64.
TEST(Rotary, Llama3InverseFrequencies) {
  const std::vector<double> want = {1.0000000000e+00, 1.9392274475e-01, 3.7606030931e-02, 7.2926647372e-03,
                                    4.2955679656e-04, 8.5702554899e-06, 1.6619674678e-06, 3.2229329304e-07};
  ops::Llama3RopeScaling s;
  s.factor = 32.0;
  const std::vector<float> got = ops::rope_inv_freq(16, 500000.0, s);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6 * want[i]) << "frequency " << i;
  // without scaling: theta^(-2i/d)
  const std::vector<float> plain = ops::rope_inv_freq(16, 500000.0);
  for (size_t i = 0; i < plain.size(); ++i)
    EXPECT_NEAR(plain[i], std::pow(500000.0, -double(2 * i) / 16.0), 1e-6 * plain[i]);
}

TEST(Rotary, RejectsBadShapes) {
  const ops::RopeTables tab = ops::rope_tables(8, 10000.0, 4);
  EXPECT_THROW(ops::rotary(randn({1, 5, 2, 8}, 1), tab.cos, tab.sin), Error);  // T 5, tables 4
  EXPECT_THROW(ops::rotary(randn({4, 8}, 2), tab.cos, tab.sin), Error);        // no head axis
  EXPECT_THROW(ops::rope_inv_freq(7, 10000.0), Error);                         // odd head_dim
}

// =============================== grouped key/value attention =====================================

namespace {
using GroupedFn = std::function<Tensor(const Tensor&, const Tensor&, const Tensor&, bool)>;
// grouped(q, k, v, causal), query head h reading key/value head map[h], equals multi-head
// attention on k and v gathered per query head on the host (B 2, head size 4), in value and in
// gradient: a key/value head's gradient is the sum over the query heads that read it.
void expect_multi_head_on_gathered(const std::vector<int64_t>& map, int64_t kv_heads, int64_t T, const Tensor& mask,
                                   uint64_t seed, const GroupedFn& grouped) {
  const int64_t B = 2, D = 4, heads = int64_t(map.size());
  Tensor q = randn({B, T, heads * D}, seed), k = randn({B, T, kv_heads * D}, seed + 1),
         v = randn({B, T, kv_heads * D}, seed + 2);
  auto gather = [&](const Tensor& t) {
    const std::vector<float> src = t.to_vector();
    std::vector<float> out(size_t(B * T * heads * D));
    for (int64_t bt = 0; bt < B * T; ++bt)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t d = 0; d < D; ++d)
          out[size_t((bt * heads + h) * D + d)] = src[size_t((bt * kv_heads + map[size_t(h)]) * D + d)];
    return Tensor::from_vector(out, {B, T, heads * D});
  };
  for (bool causal : {true, false}) {
    Tensor qg = q.detach(), kg = k.detach(), vg = v.detach();
    for (Tensor* t : {&qg, &kg, &vg}) t->set_requires_grad(true);
    Tensor got = grouped(qg, kg, vg, causal);
    Tensor qm = q.detach(), km = gather(k), vm = gather(v);
    for (Tensor* t : {&qm, &km, &vm}) t->set_requires_grad(true);
    Tensor want = ops::attention(qm, km, vm, heads, causal, mask);
    SCION_EXPECT_CLOSE(got, to_double(want), 0, 0);
    Tensor w = randn(want.shape(), seed + 3);
    ops::sum_all(ops::mul(got, w)).backward();
    ops::sum_all(ops::mul(want, w)).backward();
    SCION_EXPECT_CLOSE(qg.grad(), to_double(qm.grad()), 0, 0);
    const std::vector<float> gkm = km.grad().to_vector(), gvm = vm.grad().to_vector();
    DVec gk(size_t(B * T * kv_heads * D), 0.0), gv(gk.size(), 0.0);
    for (int64_t bt = 0; bt < B * T; ++bt)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t d = 0; d < D; ++d) {
          gk[size_t((bt * kv_heads + map[size_t(h)]) * D + d)] += gkm[size_t((bt * heads + h) * D + d)];
          gv[size_t((bt * kv_heads + map[size_t(h)]) * D + d)] += gvm[size_t((bt * heads + h) * D + d)];
        }
    SCION_EXPECT_CLOSE(kg.grad(), gk, 1e-6, 1e-5);
    SCION_EXPECT_CLOSE(vg.grad(), gv, 1e-6, 1e-5);
  }
}
}  // namespace

// GQA equals multi-head attention on k and v whose heads were repeated by hand (kv head j copied
// to query heads j*g .. j*g + g - 1), in value and in gradient (the copies' gradients summed back).
TEST(GroupedAttention, EqualsMultiHeadOnRepeatedKeysAndValues) {
  const int64_t T = 6;
  for (const auto& [heads, kv_heads] : std::vector<std::pair<int64_t, int64_t>>{{4, 2}, {6, 3}, {4, 1}, {3, 3}}) {
    std::vector<int64_t> map;
    for (int64_t h = 0; h < heads; ++h) map.push_back(h / (heads / kv_heads));
    Tensor mask = mask_u8({2, T}, [&](int64_t i) { return !(i / T == 1 && i % T >= 4); });
    expect_multi_head_on_gathered(map, kv_heads, T, mask, 231, [&, heads = heads, kv_heads = kv_heads](
                                                                   const Tensor& q, const Tensor& k, const Tensor& v,
                                                                   bool causal) {
      return ops::attention_grouped(q, k, v, heads, kv_heads, causal, mask);
    });
  }
}

// Ragged groups (a pruned grouped-query layer): query head h reads key/value head map[h]. Equals
// multi-head attention on k and v gathered per query head by hand, in value and gradient (a kv
// head's gradient the sum over the query heads that read it, however many). The uniform map
// gives exactly the uniform overload's values.
TEST(GroupedAttention, RaggedGroupsEqualMultiHeadOnGatheredKeysAndValues) {
  const int64_t T = 5;
  const std::vector<std::vector<int64_t>> maps = {{0, 1, 1}, {0, 0, 0, 1, 2, 2}, {0, 1}, {0, 0, 0}};
  for (const auto& map : maps) {
    Tensor mask = mask_u8({2, T}, [&](int64_t i) { return !(i / T == 0 && i % T >= 3); });
    expect_multi_head_on_gathered(map, map.back() + 1, T, mask, 241,
                                  [&](const Tensor& q, const Tensor& k, const Tensor& v, bool causal) {
                                    return ops::attention_grouped(q, k, v, map, causal, mask);
                                  });
  }
  // The uniform map is the uniform overload.
  Tensor q = randn({1, 4, 16}, 245), k = randn({1, 4, 8}, 246);
  SCION_EXPECT_CLOSE(ops::attention_grouped(q, k, k, std::vector<int64_t>{0, 0, 1, 1}, true),
                     to_double(ops::attention_grouped(q, k, k, 4, 2, true)), 0, 0);
  SCION_EXPECT_CLOSE(ops::repeat_kv(k, 2, std::vector<int64_t>{0, 1, 1}),
                     to_double(ops::index_select(k.reshape({1, 4, 2, 4}), 2,
                                                 Tensor::from_vector_i64({0, 1, 1}, {3}))
                                   .reshape({1, 4, 12})),
                     0, 0);
}

TEST(GroupedAttention, RaggedMapsAreCheckedAgainstTheHeads) {
  Tensor q = randn({1, 3, 12}, 1), k = randn({1, 3, 8}, 2);  // head size 4: 3 query heads, 2 kv heads
  EXPECT_NO_THROW(ops::attention_grouped(q, k, k, std::vector<int64_t>{0, 1, 1}, true));
  EXPECT_THROW(ops::attention_grouped(q, k, k, std::vector<int64_t>{0, 2, 1}, true), Error);  // kv head 2 of 2
  EXPECT_THROW(ops::attention_grouped(q, k, k, std::vector<int64_t>{0, -1, 1}, true), Error);
  EXPECT_THROW(ops::attention_grouped(q, k, k, std::vector<int64_t>{0, 1}, true), Error);  // head size 6: k's 8
  EXPECT_THROW(ops::attention_grouped(q, randn({1, 3, 4}, 3), k, std::vector<int64_t>{0, 1, 1}, true), Error);
  EXPECT_THROW(ops::repeat_kv(k, 2, std::vector<int64_t>{}), Error);
  EXPECT_THROW(ops::repeat_kv(k, 2, std::vector<int64_t>{0, 3}), Error);
}

TEST(GroupedAttention, RepeatKvFollowsHuggingFaceOrder) {
  // 2 kv heads of size 1, groups 3: [a, b] -> [a, a, a, b, b, b]
  Tensor x = Tensor::from_vector({1.f, 2.f, 3.f, 4.f}, {1, 2, 2});
  SCION_EXPECT_CLOSE(ops::repeat_kv(x, 2, 3), (DVec{1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4}), 0, 0);
}

TEST(GroupedAttention, RejectsBadHeads) {
  Tensor q = randn({1, 3, 12}, 1), k = randn({1, 3, 4}, 2);
  EXPECT_THROW(ops::attention_grouped(q, k, k, 6, 4, true), Error);            // 4 does not divide 6
  EXPECT_THROW(ops::attention_grouped(q, k, k, 6, 3, true), Error);            // k width 4 != 3 heads * 2
  EXPECT_NO_THROW(ops::attention_grouped(q, k, k, 6, 2, true));                // 2 kv heads of size 2
  EXPECT_THROW(ops::attention_grouped(q, randn({1, 4, 4}, 3), k, 6, 2, true), Error);  // T differs
}
