// Every op's values against a plain double-precision reference written here, on random inputs
// of several shapes (odd sizes and sizes that are not multiples of the vector width included),
// plus tensor views and dtype conversions checked bit for bit.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <map>
#include <set>

#include "ops/test_util.h"
#include "scion/precision.h"
#include "scion/threads.h"

using namespace scion;
using namespace scion::test;

namespace {

const std::vector<int64_t> kSizes = {1, 3, 7, 17, 33, 65, 129};

// Reference for a broadcasting binary op.
DVec ref_binary(const Tensor& a, const Tensor& b, const std::function<double(double, double)>& f, Shape* out) {
  const Shape os = broadcast_shape(a.shape(), b.shape());
  const DVec av = to_double(a), bv = to_double(b);
  DVec r(size_t(shape_numel(os)));
  for (int64_t i = 0; i < int64_t(r.size()); ++i) {
    const auto idx = unravel(i, os);
    r[size_t(i)] = f(av[size_t(broadcast_index(idx, a.shape()))], bv[size_t(broadcast_index(idx, b.shape()))]);
  }
  if (out) *out = os;
  return r;
}

DVec ref_unary(const Tensor& a, const std::function<double(double)>& f) {
  DVec v = to_double(a);
  for (double& x : v) x = f(x);
  return v;
}

double gelu_ref(double x) {
  const double k = std::sqrt(2.0 / M_PI);
  return 0.5 * x * (1 + std::tanh(k * (x + 0.044715 * x * x * x)));
}

// Sum over `axes` of a, returning values in the kept-dims order of the reduced shape.
DVec ref_reduce(const Tensor& a, const std::set<int64_t>& axes, bool mean, Shape* keep_shape) {
  const Shape& s = a.shape();
  Shape ks = s;
  for (int64_t ax : axes) ks[size_t(ax)] = 1;
  DVec r(size_t(shape_numel(ks)), 0.0);
  const DVec v = to_double(a);
  int64_t count = 1;
  for (int64_t ax : axes) count *= s[size_t(ax)];
  for (int64_t i = 0; i < a.numel(); ++i) {
    auto idx = unravel(i, s);
    for (int64_t ax : axes) idx[size_t(ax)] = 0;
    r[size_t(ravel(idx, ks))] += v[size_t(i)];
  }
  if (mean)
    for (double& x : r) x /= double(count);
  *keep_shape = ks;
  return r;
}

// C = op(A) op(B) for 2-D double matrices stored row-major.
DVec ref_mm(const DVec& A, const DVec& B, int64_t M, int64_t N, int64_t K, bool ta, bool tb) {
  DVec C(size_t(M * N), 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double a = ta ? A[size_t(k * M + i)] : A[size_t(i * K + k)];
        const double b = tb ? B[size_t(j * K + k)] : B[size_t(k * N + j)];
        s += a * b;
      }
      C[size_t(i * N + j)] = s;
    }
  return C;
}

DVec ref_softmax_rows(const DVec& x, int64_t rows, int64_t n, bool log, double T = 1.0) {
  DVec y(x.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mx = -INFINITY;
    for (int64_t i = 0; i < n; ++i) mx = std::max(mx, x[size_t(r * n + i)] / T);
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += std::exp(x[size_t(r * n + i)] / T - mx);
    const double lse = mx + std::log(s);
    for (int64_t i = 0; i < n; ++i) {
      const double l = x[size_t(r * n + i)] / T - lse;
      y[size_t(r * n + i)] = log ? l : std::exp(l);
    }
  }
  return y;
}

}  // namespace

// =============================== elementwise binary ===========================================

struct BinCase {
  Shape a, b;
};

class BinaryOps : public ::testing::TestWithParam<BinCase> {};

TEST_P(BinaryOps, MatchReference) {
  const auto& c = GetParam();
  Tensor a = randn(c.a, 11);
  Tensor b = uniform(c.b, 12, 0.5f, 2.f);  // away from 0 for div
  // alternate signs of b
  {
    float* p = b.data<float>();
    for (int64_t i = 0; i < b.numel(); ++i)
      if (i % 3 == 1) p[i] = -p[i];
  }
  Shape os;
  SCION_EXPECT_CLOSE(ops::add(a, b), ref_binary(a, b, [](double x, double y) { return x + y; }, &os), 1e-6, 1e-6);
  EXPECT_EQ(ops::add(a, b).shape(), os);
  SCION_EXPECT_CLOSE(ops::sub(a, b), ref_binary(a, b, [](double x, double y) { return x - y; }, nullptr), 1e-6, 1e-6);
  SCION_EXPECT_CLOSE(ops::mul(a, b), ref_binary(a, b, [](double x, double y) { return x * y; }, nullptr), 1e-6, 1e-6);
  SCION_EXPECT_CLOSE(ops::div(a, b), ref_binary(a, b, [](double x, double y) { return x / y; }, nullptr), 1e-6, 1e-6);
  // operand order swapped
  SCION_EXPECT_CLOSE(ops::div(b, a.narrow(0, 0, a.size(0))),
                     ref_binary(b, a, [](double x, double y) { return x / y; }, nullptr), 1e-5, 1e-5);
  SCION_EXPECT_CLOSE(a - b, ref_binary(a, b, [](double x, double y) { return x - y; }, nullptr), 1e-6, 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Shapes, BinaryOps,
                         ::testing::Values(BinCase{{7}, {7}}, BinCase{{1}, {129}}, BinCase{{3, 17}, {17}},
                                           BinCase{{3, 17}, {3, 1}}, BinCase{{4, 3, 65}, {4, 1, 65}},
                                           BinCase{{2, 5, 33}, {5, 1}}, BinCase{{5, 1}, {1, 7}},
                                           BinCase{{6, 33}, {}}, BinCase{{129, 3}, {129, 3}},
                                           BinCase{{2, 3, 4, 5}, {3, 1, 5}}, BinCase{{40, 1030}, {1030}}));

TEST(BinaryOps, ScalarShapedBothSides) {
  Tensor a = Tensor::scalar(3.f), b = Tensor::scalar(-2.f);
  Tensor y = ops::mul(a, b);
  EXPECT_EQ(y.dim(), 0);
  EXPECT_FLOAT_EQ(y.item(), -6.f);
  Tensor m = randn({5, 7}, 3);
  SCION_EXPECT_CLOSE(ops::sub(a, m), ref_binary(a, m, [](double x, double y) { return x - y; }, nullptr), 1e-6, 1e-6);
}

TEST(BinaryOps, NonContiguousInputs) {
  // transposed
  Tensor big = randn({17, 33}, 21);
  Tensor at = big.transpose(0, 1);  // [33, 17], strided
  ASSERT_FALSE(at.is_contiguous());
  Tensor b = randn({33, 17}, 22);
  SCION_EXPECT_CLOSE(ops::add(at, b), ref_binary(at, b, [](double x, double y) { return x + y; }, nullptr), 1e-6, 1e-6);
  SCION_EXPECT_CLOSE(ops::mul(b, at), ref_binary(b, at, [](double x, double y) { return x * y; }, nullptr), 1e-6, 1e-6);
  // narrowed (offset and row stride), broadcast against a narrowed row
  Tensor wide = randn({9, 40}, 23);
  Tensor an = wide.narrow(1, 3, 33);
  Tensor row = randn({1, 50}, 24).narrow(1, 5, 33);
  SCION_EXPECT_CLOSE(ops::sub(an, row), ref_binary(an, row, [](double x, double y) { return x - y; }, nullptr), 1e-6,
                     1e-6);
  // permuted 3-D with middle broadcast
  Tensor p = randn({5, 4, 3}, 25).permute({2, 0, 1});  // [3, 5, 4]
  Tensor q = randn({3, 1, 4}, 26);
  SCION_EXPECT_CLOSE(ops::div(p, ops::add_scalar(ops::mul(q, q), 0.5f)),
                     ref_binary(p, q, [](double x, double y) { return x / (y * y + 0.5); }, nullptr), 1e-5, 1e-5);
  // a column view (stride != 1 in the last dim) times a contiguous tensor
  Tensor col = wide.narrow(1, 7, 1);  // [9, 1]
  Tensor r = randn({9, 65}, 27);
  SCION_EXPECT_CLOSE(ops::mul(col, r), ref_binary(col, r, [](double x, double y) { return x * y; }, nullptr), 1e-6, 1e-6);
}

// =============================== scalar and unary ============================================

class UnaryOps : public ::testing::TestWithParam<int64_t> {};

TEST_P(UnaryOps, MatchReference) {
  const int64_t n = GetParam();
  Tensor x = randn({n}, 100 + uint64_t(n), 1.5f);
  Tensor pos = uniform({n}, 200 + uint64_t(n), 0.1f, 4.f);
  const double tol = 2e-6;
  SCION_EXPECT_CLOSE(ops::add_scalar(x, 2.5f), ref_unary(x, [](double v) { return v + 2.5; }), tol, tol);
  SCION_EXPECT_CLOSE(ops::mul_scalar(x, -0.75f), ref_unary(x, [](double v) { return v * -0.75; }), tol, tol);
  SCION_EXPECT_CLOSE(ops::neg(x), ref_unary(x, [](double v) { return -v; }), 0, 0);
  SCION_EXPECT_CLOSE(ops::exp(x), ref_unary(x, [](double v) { return std::exp(v); }), tol, tol);
  SCION_EXPECT_CLOSE(ops::log(pos), ref_unary(pos, [](double v) { return std::log(v); }), tol, tol);
  SCION_EXPECT_CLOSE(ops::tanh(x), ref_unary(x, [](double v) { return std::tanh(v); }), tol, tol);
  SCION_EXPECT_CLOSE(ops::sqrt(pos), ref_unary(pos, [](double v) { return std::sqrt(v); }), tol, tol);
  SCION_EXPECT_CLOSE(ops::rsqrt(pos), ref_unary(pos, [](double v) { return 1 / std::sqrt(v); }), tol, tol);
  SCION_EXPECT_CLOSE(ops::relu(x), ref_unary(x, [](double v) { return v > 0 ? v : 0; }), 0, 0);
  SCION_EXPECT_CLOSE(ops::gelu(x), ref_unary(x, gelu_ref), tol, 1e-5);
  SCION_EXPECT_CLOSE(ops::clamp(x, -0.5f, 0.75f),
                     ref_unary(x, [](double v) { return std::min(0.75, std::max(-0.5, v)); }), 0, 0);
  for (float p : {2.f, 3.f, 0.5f, -1.5f, 1.f})
    SCION_EXPECT_CLOSE(ops::pow_scalar(pos, p), ref_unary(pos, [p](double v) { return std::pow(v, double(p)); }),
                       tol, 1e-5);
  SCION_EXPECT_CLOSE(ops::pow_scalar(x, 2.f), ref_unary(x, [](double v) { return v * v; }), tol, 1e-5);
  SCION_EXPECT_CLOSE(x * 3.f, ref_unary(x, [](double v) { return 3 * v; }), tol, tol);
  SCION_EXPECT_CLOSE(-x, ref_unary(x, [](double v) { return -v; }), 0, 0);
}

INSTANTIATE_TEST_SUITE_P(Sizes, UnaryOps, ::testing::Values(1, 3, 7, 17, 33, 65, 129, 40001));

TEST(UnaryOps, NonContiguousAndShapes) {
  Tensor x = randn({7, 33}, 5).transpose(0, 1);  // [33, 7]
  Tensor y = ops::gelu(x);
  EXPECT_EQ(y.shape(), (Shape{33, 7}));
  SCION_EXPECT_CLOSE(y, ref_unary(x, gelu_ref), 1e-6, 1e-5);
  Tensor z = ops::exp(randn({5, 20}, 6).narrow(1, 2, 17));
  SCION_EXPECT_CLOSE(z, ref_unary(randn({5, 20}, 6).narrow(1, 2, 17), [](double v) { return std::exp(v); }), 1e-6,
                     2e-6);
  // 0-d
  Tensor s = ops::tanh(Tensor::scalar(0.3f));
  EXPECT_EQ(s.dim(), 0);
  EXPECT_NEAR(s.item(), std::tanh(0.3), 1e-7);
}

TEST(UnaryOps, SpecialValues) {
  Tensor x = Tensor::from_vector({0.f, -0.f, INFINITY, -INFINITY, NAN}, {5});
  auto r = ops::relu(x).to_vector();
  EXPECT_EQ(r[2], INFINITY);
  EXPECT_EQ(r[3], 0.f);
  auto e = ops::exp(x).to_vector();
  EXPECT_EQ(e[0], 1.f);
  EXPECT_EQ(e[2], INFINITY);
  EXPECT_EQ(e[3], 0.f);
  EXPECT_TRUE(std::isnan(e[4]));
  auto l = ops::log(x).to_vector();
  EXPECT_EQ(l[0], -INFINITY);
  EXPECT_EQ(l[2], INFINITY);
  auto t = ops::tanh(x).to_vector();
  EXPECT_EQ(t[2], 1.f);
  EXPECT_EQ(t[3], -1.f);
}

// =============================== reductions ==================================================

struct ReduceCase {
  Shape shape;
  std::vector<int64_t> axes;
};

class Reductions : public ::testing::TestWithParam<ReduceCase> {};

TEST_P(Reductions, SumMean) {
  const auto& c = GetParam();
  Tensor a = randn(c.shape, 31);
  std::set<int64_t> ax;
  for (int64_t v : c.axes) ax.insert(v < 0 ? v + int64_t(c.shape.size()) : v);
  Shape ks;
  const DVec s = ref_reduce(a, ax, false, &ks), m = ref_reduce(a, ax, true, &ks);
  Shape flat;
  for (size_t d = 0; d < ks.size(); ++d)
    if (!ax.count(int64_t(d))) flat.push_back(ks[d]);
  for (bool keep : {false, true}) {
    Tensor ys = ops::sum(a, c.axes, keep), ym = ops::mean(a, c.axes, keep);
    EXPECT_EQ(ys.shape(), keep ? ks : flat);
    EXPECT_EQ(ym.shape(), keep ? ks : flat);
    SCION_EXPECT_CLOSE(ys, s, 1e-5, 1e-5);
    SCION_EXPECT_CLOSE(ym, m, 1e-6, 1e-5);
  }
  // the same on a non-contiguous view of the same values
  Tensor at = a.transpose(0, -1).contiguous().transpose(0, -1);
  ASSERT_FALSE(at.is_contiguous() && a.dim() > 1 && a.size(0) > 1 && a.size(-1) > 1);
  SCION_EXPECT_CLOSE(ops::sum(at, c.axes, true), s, 1e-5, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Axes, Reductions,
    ::testing::Values(ReduceCase{{7}, {0}}, ReduceCase{{3, 5, 7}, {0}}, ReduceCase{{3, 5, 7}, {1}},
                      ReduceCase{{3, 5, 7}, {2}}, ReduceCase{{3, 5, 7}, {-1}}, ReduceCase{{3, 5, 7}, {0, 2}},
                      ReduceCase{{3, 5, 7}, {2, 0}}, ReduceCase{{3, 5, 7}, {0, 1, 2}}, ReduceCase{{2, 17, 33}, {1}},
                      ReduceCase{{2, 17, 33}, {}}, ReduceCase{{65, 129}, {0}}, ReduceCase{{65, 129}, {1}},
                      ReduceCase{{1, 129, 1}, {1}}, ReduceCase{{4, 1, 3, 5}, {1, 3}}));

TEST(Reductions, Max) {
  for (Shape s : {Shape{7}, Shape{3, 17}, Shape{4, 33, 5}, Shape{2, 3, 65}}) {
    Tensor a = randn(s, 41);
    for (int64_t axis = 0; axis < int64_t(s.size()); ++axis) {
      Shape ks = s;
      ks[size_t(axis)] = 1;
      DVec ref(size_t(shape_numel(ks)), -INFINITY);
      const DVec v = to_double(a);
      for (int64_t i = 0; i < a.numel(); ++i) {
        auto idx = unravel(i, s);
        idx[size_t(axis)] = 0;
        double& r = ref[size_t(ravel(idx, ks))];
        r = std::max(r, v[size_t(i)]);
      }
      Tensor y = ops::max(a, axis, true);
      EXPECT_EQ(y.shape(), ks);
      SCION_EXPECT_CLOSE(y, ref, 0, 0);
      Tensor y2 = ops::max(a, axis - int64_t(s.size()), false);
      Shape flat = s;
      flat.erase(flat.begin() + axis);
      EXPECT_EQ(y2.shape(), flat);
      SCION_EXPECT_CLOSE(y2, ref, 0, 0);
    }
  }
  // all-negative and -inf values
  Tensor a = Tensor::from_vector({-5.f, -INFINITY, -3.f, -INFINITY}, {2, 2});
  EXPECT_EQ(ops::max(a, 1).to_vector(), (std::vector<float>{-5.f, -3.f}));
}

TEST(Reductions, SumAllMeanAll) {
  for (int64_t n : {int64_t(1), int64_t(129), int64_t(8193), int64_t(100003)}) {
    Tensor a = randn({n}, 51 + uint64_t(n));
    const DVec v = to_double(a);
    double s = 0;
    for (double x : v) s += x;
    Tensor y = ops::sum_all(a);
    EXPECT_EQ(y.dim(), 0);
    EXPECT_NEAR(y.item(), s, 1e-6 * std::max(1.0, std::fabs(s)) + 1e-5);
    EXPECT_NEAR(ops::mean_all(a).item(), s / double(n), 1e-6);
  }
  Tensor m = randn({17, 33}, 3).transpose(0, 1);
  const DVec v = to_double(m);
  double s = 0;
  for (double x : v) s += x;
  EXPECT_NEAR(ops::sum_all(m).item(), s, 1e-4);
}

TEST(Reductions, SumTo) {
  Tensor a = randn({4, 3, 5}, 61);
  for (Shape target : {Shape{3, 1}, Shape{1, 5}, Shape{}, Shape{4, 1, 1}, Shape{5}, Shape{3, 5}, Shape{4, 3, 5},
                       Shape{1, 1, 1}}) {
    Tensor y = ops::sum_to(a, target);
    EXPECT_EQ(y.shape(), target);
    // reference: y[j] = sum of a[i] over i that broadcast onto j
    DVec ref(size_t(shape_numel(target)), 0.0);
    const DVec v = to_double(a);
    for (int64_t i = 0; i < a.numel(); ++i) ref[size_t(broadcast_index(unravel(i, a.shape()), target))] += v[size_t(i)];
    SCION_EXPECT_CLOSE(y, ref, 1e-5, 1e-5);
  }
}

// =============================== matmul and linear ===========================================

struct MMCase {
  int64_t M, K, N;
};
class Matmul : public ::testing::TestWithParam<MMCase> {};

TEST_P(Matmul, AllTransposes2D) {
  const auto [M, K, N] = GetParam();
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Tensor A = randn(ta ? Shape{K, M} : Shape{M, K}, 71);
      Tensor B = randn(tb ? Shape{N, K} : Shape{K, N}, 72);
      Tensor C = ops::matmul(A, B, ta, tb);
      ASSERT_EQ(C.shape(), (Shape{M, N}));
      SCION_EXPECT_CLOSE(C, ref_mm(to_double(A), to_double(B), M, N, K, ta, tb), 1e-5 * double(K) + 1e-5, 1e-5);
    }
}

TEST_P(Matmul, BatchedAndShared) {
  const auto [M, K, N] = GetParam();
  const int64_t Bt = 3;
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Tensor A = randn(ta ? Shape{Bt, K, M} : Shape{Bt, M, K}, 73);
      Tensor B = randn(tb ? Shape{Bt, N, K} : Shape{Bt, K, N}, 74);
      Tensor B2 = randn(tb ? Shape{N, K} : Shape{K, N}, 75);
      const DVec av = to_double(A), bv = to_double(B), b2 = to_double(B2);
      DVec ref, ref2;
      for (int64_t b = 0; b < Bt; ++b) {
        DVec a1(av.begin() + b * M * K, av.begin() + (b + 1) * M * K);
        DVec b1(bv.begin() + b * K * N, bv.begin() + (b + 1) * K * N);
        DVec c = ref_mm(a1, b1, M, N, K, ta, tb), c2 = ref_mm(a1, b2, M, N, K, ta, tb);
        ref.insert(ref.end(), c.begin(), c.end());
        ref2.insert(ref2.end(), c2.begin(), c2.end());
      }
      Tensor C = ops::matmul(A, B, ta, tb), C2 = ops::matmul(A, B2, ta, tb);
      EXPECT_EQ(C.shape(), (Shape{Bt, M, N}));
      EXPECT_EQ(C2.shape(), (Shape{Bt, M, N}));
      const double atol = 1e-5 * double(K) + 1e-5;
      SCION_EXPECT_CLOSE(C, ref, atol, 1e-5);
      SCION_EXPECT_CLOSE(C2, ref2, atol, 1e-5);
      // 4-D a with a shared 2-D b
      Tensor A4 = A.reshape(ta ? Shape{1, Bt, K, M} : Shape{1, Bt, M, K});
      Tensor C4 = ops::matmul(A4, B2, ta, tb);
      EXPECT_EQ(C4.shape(), (Shape{1, Bt, M, N}));
      SCION_EXPECT_CLOSE(C4, ref2, atol, 1e-5);
    }
}

INSTANTIATE_TEST_SUITE_P(Sizes, Matmul,
                         ::testing::Values(MMCase{1, 1, 1}, MMCase{3, 7, 17}, MMCase{17, 33, 7}, MMCase{33, 1, 65},
                                           MMCase{65, 17, 3}, MMCase{7, 129, 9}));

TEST(Matmul, NonContiguousOperands) {
  Tensor A = randn({9, 13}, 81).transpose(0, 1);        // [13, 9] strided
  Tensor B = randn({12, 30}, 82).narrow(1, 4, 7).narrow(0, 3, 9);  // [9, 7] strided
  DVec ref = ref_mm(to_double(A), to_double(B), 13, 7, 9, false, false);
  SCION_EXPECT_CLOSE(ops::matmul(A, B), ref, 1e-4, 1e-5);
}

// A long inner size with a small output (the fused head's dx = G·W) is summed in K slices,
// the partials added in slice order: still the product, with the same bits on 1 and 2
// threads, for every transpose, f32 and bf16 GEMMs.
TEST(Matmul, LongInnerProductsSplitAlongKMatchF64AndTheThreadCount) {
  const int64_t M = 9, N = 7, K = 20011;  // five slices of 4096, the last one short
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Tensor A = randn(ta ? Shape{K, M} : Shape{M, K}, 83), B = randn(tb ? Shape{N, K} : Shape{K, N}, 84);
      const DVec ref = ref_mm(to_double(A), to_double(B), M, N, K, ta, tb);
      set_num_threads(1);
      Tensor one = ops::matmul(A, B, ta, tb);
      set_num_threads(2);
      Tensor two = ops::matmul(A, B, ta, tb);
      set_num_threads(0);
      SCION_EXPECT_CLOSE(one, ref, 2e-3, 1e-4);
      EXPECT_TRUE(same_bits(one, two)) << ta << tb;
    }
  Tensor A = randn({M, K}, 85), B = randn({K, N}, 86);
  set_matmul_precision(MatmulPrecision::bf16);
  Tensor bf = ops::matmul(A, B);
  set_matmul_precision(MatmulPrecision::f32);
  SCION_EXPECT_CLOSE(bf, ref_mm(to_double(A), to_double(B), M, N, K, false, false), 0.5, 2e-2);
}

TEST(Linear, BothLayoutsWithAndWithoutBias) {
  for (auto [in, out] : {std::pair<int64_t, int64_t>{7, 17}, {33, 5}, {1, 3}, {65, 129}}) {
    Tensor x = randn({2, 3, in}, 91);
    Tensor w_oi = randn({out, in}, 92);
    Tensor w_io = w_oi.transpose(0, 1).contiguous();  // same weights, [in, out]
    Tensor bias = randn({out}, 93);
    const DVec xv = to_double(x), wv = to_double(w_oi), bv = to_double(bias);
    const int64_t rows = 6;
    DVec ref(size_t(rows * out)), refb(size_t(rows * out));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t o = 0; o < out; ++o) {
        double s = 0;
        for (int64_t i = 0; i < in; ++i) s += xv[size_t(r * in + i)] * wv[size_t(o * in + i)];
        ref[size_t(r * out + o)] = s;
        refb[size_t(r * out + o)] = s + bv[size_t(o)];
      }
    const double atol = 1e-5 * double(in) + 1e-5;
    for (bool in_out : {false, true}) {
      const Tensor& w = in_out ? w_io : w_oi;
      Tensor y = ops::linear(x, w, Tensor(), in_out);
      EXPECT_EQ(y.shape(), (Shape{2, 3, out}));
      SCION_EXPECT_CLOSE(y, ref, atol, 1e-5);
      SCION_EXPECT_CLOSE(ops::linear(x, w, bias, in_out), refb, atol, 1e-5);
    }
    // strided input and a transposed-view weight
    Tensor xs = randn({in, 6}, 91).transpose(0, 1);
    const DVec xsv = to_double(xs);
    DVec r2(size_t(6 * out));
    for (int64_t r = 0; r < 6; ++r)
      for (int64_t o = 0; o < out; ++o) {
        double s = bv[size_t(o)];
        for (int64_t i = 0; i < in; ++i) s += xsv[size_t(r * in + i)] * wv[size_t(o * in + i)];
        r2[size_t(r * out + o)] = s;
      }
    SCION_EXPECT_CLOSE(ops::linear(xs, w_oi.transpose(0, 1), bias, true), r2, atol, 1e-5);
  }
}

TEST(Linear, ZeroSizedDimensions) {
  // no input features: the output is the bias (no division by zero anywhere)
  Tensor y = ops::linear(Tensor::zeros({2, 0}), Tensor::zeros({0, 3}), Tensor::from_vector({1, 2, 3}, {3}), true);
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  SCION_EXPECT_CLOSE(y, (DVec{1, 2, 3, 1, 2, 3}), 0, 0);
  EXPECT_EQ(ops::linear(Tensor::zeros({0, 4}), randn({3, 4}, 1), Tensor(), false).shape(), (Shape{0, 3}));
  // K = 0 gives zeros; M = 0 gives an empty result
  SCION_EXPECT_CLOSE(ops::matmul(Tensor::zeros({2, 0}), Tensor::zeros({0, 3})), DVec(6, 0.0), 0, 0);
  EXPECT_EQ(ops::matmul(Tensor::zeros({0, 5}), randn({5, 3}, 2)).shape(), (Shape{0, 3}));
  // reductions over an empty axis are zeros; empty losses are 0
  SCION_EXPECT_CLOSE(ops::sum(Tensor::zeros({0, 3}), {0}), DVec(3, 0.0), 0, 0);
  EXPECT_EQ(ops::cross_entropy(Tensor::zeros({0, 3}), Tensor::zeros({0}, DType::i64)).item(), 0.f);
  EXPECT_EQ(ops::attention(Tensor::zeros({1, 0, 4}), Tensor::zeros({1, 0, 4}), Tensor::zeros({1, 0, 4}), 2, true).shape(),
            (Shape{1, 0, 4}));
}

// =============================== softmax, layernorm ============================================

TEST(Softmax, LastAndOtherAxes) {
  for (Shape s : {Shape{3, 17}, Shape{4, 7, 5}, Shape{1, 129}, Shape{2, 3, 65}, Shape{33}}) {
    Tensor a = randn(s, 101, 3.f);
    for (int64_t axis = -1; axis < int64_t(s.size()); ++axis) {
      const int64_t ax = axis < 0 ? axis + int64_t(s.size()) : axis;
      // reference: move axis to the end, softmax rows, move back
      const DVec v = to_double(a);
      const int64_t n = s[size_t(ax)], rows = a.numel() / n;
      DVec moved(v.size());
      Shape ms = s;
      ms.erase(ms.begin() + ax);
      ms.push_back(n);
      std::vector<int64_t> where(v.size());
      for (int64_t i = 0; i < a.numel(); ++i) {
        auto idx = unravel(i, s);
        const int64_t k = idx[size_t(ax)];
        idx.erase(idx.begin() + ax);
        idx.push_back(k);
        where[size_t(i)] = ravel(idx, ms);
        moved[size_t(where[size_t(i)])] = v[size_t(i)];
      }
      for (bool log : {false, true}) {
        const DVec ym = ref_softmax_rows(moved, rows, n, log);
        DVec ref(v.size());
        for (size_t i = 0; i < v.size(); ++i) ref[i] = ym[size_t(where[i])];
        Tensor y = log ? ops::log_softmax(a, axis) : ops::softmax(a, axis);
        EXPECT_EQ(y.shape(), s);
        SCION_EXPECT_CLOSE(y, ref, 2e-6, 1e-5);
      }
    }
  }
}

TEST(Softmax, LargeLogitsAreStable) {
  Tensor a = ops::add_scalar(randn({5, 33}, 102), 1000.f);
  Tensor y = ops::softmax(a);
  SCION_EXPECT_CLOSE(y, ref_softmax_rows(to_double(a), 5, 33, false), 1e-4, 1e-3);
  Tensor l = ops::log_softmax(ops::mul_scalar(a, -1.f));
  for (float v : l.to_vector()) EXPECT_TRUE(std::isfinite(v));
}

TEST(LayerNorm, MaskedStatisticsMatchReference) {
  const Shape s{3, 2, 10};
  const int64_t n = 10, rows = 6;
  Tensor x = ops::add_scalar(randn(s, 121, 2.f), 0.4f);
  Tensor w = randn({n}, 122), b = randn({n}, 123);
  Tensor mask = Tensor::from_vector({1, 1, 1, 1, 1, 1, 0.25f, 0.25f, 0, 0}, {n});
  const double eps = 1e-5;
  const DVec xv = to_double(x), wv = to_double(w), bv = to_double(b), mv = to_double(mask);
  double total = 0;
  for (double m : mv) total += m;
  DVec ref(xv.size());
  for (int64_t r = 0; r < rows; ++r) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < n; ++i) mean += mv[size_t(i)] * xv[size_t(r * n + i)];
    mean /= total;
    for (int64_t i = 0; i < n; ++i) var += mv[size_t(i)] * std::pow(xv[size_t(r * n + i)] - mean, 2);
    var /= total;
    for (int64_t i = 0; i < n; ++i)
      ref[size_t(r * n + i)] =
          mv[size_t(i)] * ((xv[size_t(r * n + i)] - mean) / std::sqrt(var + eps) * wv[size_t(i)] + bv[size_t(i)]);
  }
  SCION_EXPECT_CLOSE(ops::layernorm_masked(x, w, b, mask, float(eps)), ref, 2e-5, 1e-4);
  // All ones: the plain LayerNorm. Zeros on the last features: the LayerNorm of the others,
  // zeros there.
  SCION_EXPECT_CLOSE(ops::layernorm_masked(x, w, b, Tensor::ones({n}), float(eps)),
                     to_double(ops::layernorm(x, w, b, float(eps))), 1e-5, 1e-5);
  Tensor half = Tensor::ones({n});
  half.narrow(0, 6, 4).fill_(0.f);
  Tensor head = ops::layernorm(x.narrow(2, 0, 6), w.narrow(0, 0, 6), b.narrow(0, 0, 6), float(eps));
  Tensor got = ops::layernorm_masked(x, w, b, half, float(eps));
  SCION_EXPECT_CLOSE(got.narrow(2, 0, 6), to_double(head), 1e-5, 1e-5);
  SCION_EXPECT_CLOSE(got.narrow(2, 6, 4), DVec(24, 0.0), 0, 0);
}

TEST(LayerNorm, KeptStatisticsRunUnweightedOverTheKeptFeatures) {
  // CoFi's LayerNorm: the plain LayerNorm of the features whose mask is not 0 (whatever its
  // soft value), times the mask; the others neither shift the statistics nor show in the output.
  const int64_t n = 10;
  Tensor x = ops::add_scalar(randn({3, 2, n}, 124, 2.f), 0.4f);
  Tensor w = randn({n}, 125), b = randn({n}, 126);
  Tensor mask = Tensor::from_vector({0.3f, 1, 0, 0.7f, 1, 1, 0.05f, 0, 1, 0.5f}, {n});
  const float eps = 1e-5f;
  const std::vector<int64_t> kept{0, 1, 3, 4, 5, 6, 8, 9};
  Tensor idx = Tensor::from_vector(std::vector<float>(kept.begin(), kept.end()), {int64_t(kept.size())}).to(DType::i64);
  Tensor ref = ops::mul(ops::layernorm(ops::index_select(x, 2, idx), ops::index_select(w, 0, idx),
                                       ops::index_select(b, 0, idx), eps),
                        ops::index_select(mask, 0, idx));
  Tensor got = ops::layernorm_kept(x, w, b, mask, eps);
  SCION_EXPECT_CLOSE(ops::index_select(got, 2, idx), to_double(ref), 1e-5, 1e-5);
  SCION_EXPECT_CLOSE(got.narrow(2, 2, 1), DVec(6, 0.0), 0, 0);
  SCION_EXPECT_CLOSE(got.narrow(2, 7, 1), DVec(6, 0.0), 0, 0);
  // A removed feature's input does not matter; an all-ones mask is the plain LayerNorm.
  Tensor x2 = x.clone();
  x2.narrow(2, 2, 1).fill_(50.f);
  SCION_EXPECT_CLOSE(ops::layernorm_kept(x2, w, b, mask, eps), to_double(got), 0, 0);
  SCION_EXPECT_CLOSE(ops::layernorm_kept(x, w, b, Tensor::ones({n}), eps), to_double(ops::layernorm(x, w, b, eps)),
                     1e-5, 1e-5);
  EXPECT_THROW(ops::layernorm_kept(x, w, b, Tensor::zeros({n}), eps), Error);
}

TEST(LayerNorm, MatchesReference) {
  for (Shape s : {Shape{5, 33}, Shape{2, 3, 129}, Shape{7, 1}, Shape{17}, Shape{3, 65}}) {
    const int64_t n = s.back(), rows = shape_numel(s) / n;
    Tensor x = ops::add_scalar(randn(s, 111, 2.f), 0.7f);
    Tensor w = randn({n}, 112), b = randn({n}, 113);
    const double eps = 1e-5;
    const DVec xv = to_double(x), wv = to_double(w), bv = to_double(b);
    DVec ref(xv.size());
    for (int64_t r = 0; r < rows; ++r) {
      double m = 0, var = 0;
      for (int64_t i = 0; i < n; ++i) m += xv[size_t(r * n + i)];
      m /= double(n);
      for (int64_t i = 0; i < n; ++i) var += (xv[size_t(r * n + i)] - m) * (xv[size_t(r * n + i)] - m);
      var /= double(n);
      for (int64_t i = 0; i < n; ++i)
        ref[size_t(r * n + i)] = (xv[size_t(r * n + i)] - m) / std::sqrt(var + eps) * wv[size_t(i)] + bv[size_t(i)];
    }
    Tensor y = ops::layernorm(x, w, b, float(eps));
    EXPECT_EQ(y.shape(), s);
    SCION_EXPECT_CLOSE(y, ref, 2e-5, 1e-4);
  }
  // strided input
  Tensor xt = randn({33, 4}, 114).transpose(0, 1);
  Tensor y = ops::layernorm(xt, Tensor::ones({33}), Tensor::zeros({33}));
  Tensor y2 = ops::layernorm(xt.contiguous(), Tensor::ones({33}), Tensor::zeros({33}));
  EXPECT_TRUE(same_bits(y, y2));
}

// =============================== embedding and indexing ========================================

TEST(Indexing, Embedding) {
  for (auto [V, D] : {std::pair<int64_t, int64_t>{17, 7}, {3, 129}, {65, 1}}) {
    Tensor w = randn({V, D}, 121);
    Tensor id = ids({3, 5}, 122, 0, V);
    id.data<int64_t>()[4] = id.data<int64_t>()[0];  // a repeat
    id.data<int64_t>()[1] = V - 1;
    Tensor y = ops::embedding(w, id);
    EXPECT_EQ(y.shape(), (Shape{3, 5, D}));
    const DVec wv = to_double(w);
    DVec ref;
    for (int64_t t : id.to_vector_i64()) ref.insert(ref.end(), wv.begin() + t * D, wv.begin() + (t + 1) * D);
    SCION_EXPECT_CLOSE(y, ref, 0, 0);
    SCION_EXPECT_CLOSE(ops::embedding(w, id.to(DType::i32)), ref, 0, 0);
    // ids as a strided view, and a 0-d id
    Tensor idt = id.transpose(0, 1);
    DVec ref_t;
    for (int64_t t : idt.to_vector_i64()) ref_t.insert(ref_t.end(), wv.begin() + t * D, wv.begin() + (t + 1) * D);
    SCION_EXPECT_CLOSE(ops::embedding(w, idt), ref_t, 0, 0);
    Tensor y0 = ops::embedding(w, Tensor::from_vector_i64({V - 1}, {}));
    EXPECT_EQ(y0.shape(), (Shape{D}));
    SCION_EXPECT_CLOSE(y0, DVec(wv.end() - D, wv.end()), 0, 0);
  }
}

TEST(Indexing, IndexSelect) {
  Tensor a = randn({5, 7, 3}, 131);
  const DVec av = to_double(a);
  for (int64_t axis = 0; axis < 3; ++axis) {
    const int64_t n = a.size(axis);
    Tensor idx = Tensor::from_vector_i64({n - 1, 0, n - 1, n / 2}, {4});
    Tensor y = ops::index_select(a, axis - (axis == 2 ? 3 : 0), idx);
    Shape os = a.shape();
    os[size_t(axis)] = 4;
    EXPECT_EQ(y.shape(), os);
    const auto iv = idx.to_vector_i64();
    DVec ref(size_t(shape_numel(os)));
    for (int64_t i = 0; i < int64_t(ref.size()); ++i) {
      auto o = unravel(i, os);
      o[size_t(axis)] = iv[size_t(o[size_t(axis)])];
      ref[size_t(i)] = av[size_t(ravel(o, a.shape()))];
    }
    SCION_EXPECT_CLOSE(y, ref, 0, 0);
    SCION_EXPECT_CLOSE(ops::index_select(a.transpose(0, 2).contiguous().transpose(0, 2), axis, idx.to(DType::i32)),
                       ref, 0, 0);
  }
}

TEST(Indexing, Gather) {
  Tensor a = randn({4, 9, 5}, 141);
  const DVec av = to_double(a);
  for (int64_t axis = 0; axis < 3; ++axis) {
    Shape is = {3, 6, 2};
    is[size_t(axis)] = 7;  // along the axis the index may be longer than the input
    Tensor idx = ids(is, 142 + uint64_t(axis), 0, a.size(axis));
    Tensor y = ops::gather(a, axis, idx);
    EXPECT_EQ(y.shape(), is);
    const auto iv = idx.to_vector_i64();
    DVec ref(iv.size());
    for (int64_t i = 0; i < int64_t(iv.size()); ++i) {
      auto o = unravel(i, is);
      o[size_t(axis)] = iv[size_t(i)];
      ref[size_t(i)] = av[size_t(ravel(o, a.shape()))];
    }
    SCION_EXPECT_CLOSE(y, ref, 0, 0);
  }
  // typical use: pick one class per row
  Tensor logits = randn({6, 11}, 143);
  Tensor t = ids({6, 1}, 144, 0, 11);
  Tensor picked = ops::gather(logits, 1, t);
  const auto lv = logits.to_vector();
  const auto tv = t.to_vector_i64();
  for (int64_t r = 0; r < 6; ++r) EXPECT_EQ(picked.to_vector()[size_t(r)], lv[size_t(r * 11 + tv[size_t(r)])]);
}

TEST(Indexing, ConcatSplit) {
  Tensor a = randn({3, 2, 5}, 151), b = randn({3, 7, 5}, 152), c = randn({3, 1, 5}, 153);
  Tensor y = ops::concat({a, b, c}, 1);
  EXPECT_EQ(y.shape(), (Shape{3, 10, 5}));
  DVec ref(size_t(y.numel()));
  const DVec av = to_double(a), bv = to_double(b), cv = to_double(c);
  for (int64_t i = 0; i < y.numel(); ++i) {
    auto idx = unravel(i, y.shape());
    const int64_t j = idx[1];
    if (j < 2) ref[size_t(i)] = av[size_t(ravel(idx, a.shape()))];
    else if (j < 9) idx[1] = j - 2, ref[size_t(i)] = bv[size_t(ravel(idx, b.shape()))];
    else idx[1] = j - 9, ref[size_t(i)] = cv[size_t(ravel(idx, c.shape()))];
  }
  SCION_EXPECT_CLOSE(y, ref, 0, 0);
  // concat along the last axis with a strided part, and along axis 0
  Tensor d = randn({5, 3}, 154).transpose(0, 1);  // [3, 5]
  Tensor y2 = ops::concat({randn({3, 4}, 155), d}, -1);
  EXPECT_EQ(y2.shape(), (Shape{3, 9}));
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t k = 0; k < 5; ++k) EXPECT_EQ(y2.to_vector()[size_t(r * 9 + 4 + k)], d.to_vector()[size_t(r * 5 + k)]);
  Tensor y0 = ops::concat({a, a}, 0);
  EXPECT_EQ(y0.shape(), (Shape{6, 2, 5}));
  DVec aa = av;
  aa.insert(aa.end(), av.begin(), av.end());
  SCION_EXPECT_CLOSE(y0, aa, 0, 0);
  // split is the inverse
  auto parts = ops::split(y, {2, 7, 1}, 1);
  ASSERT_EQ(parts.size(), 3u);
  EXPECT_TRUE(same_bits(parts[0], a));
  EXPECT_TRUE(same_bits(parts[1], b));
  EXPECT_TRUE(same_bits(parts[2], c));
  auto p2 = ops::split(y, {10}, -2);
  ASSERT_EQ(p2.size(), 1u);
  EXPECT_TRUE(same_bits(p2[0], y));
  auto p3 = ops::split(y, {0, 10}, 1);
  EXPECT_EQ(p3[0].shape(), (Shape{3, 0, 5}));
}

TEST(Indexing, MaskedFillAndWhere) {
  Tensor a = randn({5, 7}, 161);
  Tensor m = mask_u8({1, 7}, [](int64_t i) { return i % 3 == 0; });
  Tensor y = ops::masked_fill(a, m, -1e9f);
  const DVec av = to_double(a);
  DVec ref(av);
  for (int64_t r = 0; r < 5; ++r)
    for (int64_t c = 0; c < 7; ++c)
      if (c % 3 == 0) ref[size_t(r * 7 + c)] = -1e9f;
  SCION_EXPECT_CLOSE(y, ref, 0, 0);
  // full-shape mask and a strided input
  Tensor at = randn({7, 5}, 162).transpose(0, 1);
  Tensor mf = mask_u8({5, 7}, [](int64_t i) { return i % 2 == 1; });
  DVec rf = to_double(at);
  for (size_t i = 0; i < rf.size(); ++i)
    if (i % 2 == 1) rf[i] = 2.5;
  SCION_EXPECT_CLOSE(ops::masked_fill(at, mf, 2.5f), rf, 0, 0);

  Tensor cond = mask_u8({5, 1}, [](int64_t i) { return i % 2 == 0; });
  Tensor b = randn({7}, 163);
  Tensor w = ops::where(cond, a, b);
  EXPECT_EQ(w.shape(), (Shape{5, 7}));
  const DVec bv = to_double(b);
  DVec rw(35);
  for (int64_t r = 0; r < 5; ++r)
    for (int64_t c = 0; c < 7; ++c) rw[size_t(r * 7 + c)] = r % 2 == 0 ? av[size_t(r * 7 + c)] : bv[size_t(c)];
  SCION_EXPECT_CLOSE(w, rw, 0, 0);
  // all three broadcast to a larger shape
  Tensor c3 = mask_u8({1, 4, 1}, [](int64_t i) { return i != 2; });
  Tensor x3 = randn({3, 1, 1}, 164), y3 = randn({1, 1, 6}, 165);
  Tensor w3 = ops::where(c3, x3, y3);
  EXPECT_EQ(w3.shape(), (Shape{3, 4, 6}));
  const DVec xv3 = to_double(x3), yv3 = to_double(y3);
  DVec r3(72);
  for (int64_t i = 0; i < 72; ++i) {
    auto idx = unravel(i, {3, 4, 6});
    r3[size_t(i)] = idx[1] != 2 ? xv3[size_t(idx[0])] : yv3[size_t(idx[2])];
  }
  SCION_EXPECT_CLOSE(w3, r3, 0, 0);
}

// =============================== dropout =======================================================

TEST(Dropout, RateScaleSeed) {
  const int64_t n = 200003;
  Tensor x = ops::add_scalar(uniform({n}, 171, 0.f, 1.f), 1.f);  // never 0
  for (float p : {0.1f, 0.5f, 0.9f}) {
    Tensor y = ops::dropout(x, p, 42);
    const auto xv = x.to_vector(), yv = y.to_vector();
    int64_t dropped = 0;
    double worst = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (yv[size_t(i)] == 0.f) {
        ++dropped;
      } else {
        worst = std::max(worst, std::fabs(double(yv[size_t(i)]) - double(xv[size_t(i)]) / (1.0 - p)));
      }
    }
    const double rate = double(dropped) / double(n);
    const double sigma = std::sqrt(p * (1 - p) / double(n));
    EXPECT_NEAR(rate, p, 5 * sigma) << "p=" << p;
    EXPECT_LT(worst, 1e-5) << "kept values must be x / (1 - p)";
    EXPECT_TRUE(same_bits(y, ops::dropout(x, p, 42))) << "same seed, same mask";
    EXPECT_FALSE(same_bits(y, ops::dropout(x, p, 43))) << "another seed, another mask";
    // the mask depends only on (seed, i): a prefix of the tensor gets the prefix of the mask
    Tensor yp = ops::dropout(x.narrow(0, 0, 1000), p, 42);
    EXPECT_TRUE(same_bits(yp, y.narrow(0, 0, 1000)));
  }
  Tensor y0 = ops::dropout(x, 0.f, 42);
  EXPECT_TRUE(same_bits(y0, x)) << "p = 0 is the identity";
  // strided input
  Tensor m = randn({33, 17}, 172).transpose(0, 1);
  EXPECT_TRUE(same_bits(ops::dropout(m, 0.3f, 7), ops::dropout(m.contiguous(), 0.3f, 7)));
}

// =============================== attention =====================================================

namespace {
// Reference multi-head attention in double. x[b, t, c] as flat vectors in [B, T, C] order.
DVec ref_attention(const DVec& q, const DVec& k, const DVec& v, int64_t B, int64_t T, int64_t C, int64_t H,
                   bool causal, const std::vector<uint8_t>* mask) {
  const int64_t D = C / H;
  DVec out(size_t(B * T * C), 0.0);
  const double scale = 1.0 / std::sqrt(double(D));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < T; ++i) {
        DVec s(size_t(T), -INFINITY);
        double mx = -INFINITY;
        for (int64_t j = 0; j < T; ++j) {
          if (causal && j > i) continue;
          if (mask && !(*mask)[size_t(b * T + j)]) continue;
          double d = 0;
          for (int64_t e = 0; e < D; ++e)
            d += q[size_t((b * T + i) * C + h * D + e)] * k[size_t((b * T + j) * C + h * D + e)];
          s[size_t(j)] = d * scale;
          mx = std::max(mx, s[size_t(j)]);
        }
        if (mx == -INFINITY) continue;  // nothing visible: zeros
        double z = 0;
        for (int64_t j = 0; j < T; ++j) z += std::exp(s[size_t(j)] - mx);
        for (int64_t j = 0; j < T; ++j) {
          const double p = std::exp(s[size_t(j)] - mx) / z;
          if (p == 0) continue;
          for (int64_t e = 0; e < D; ++e)
            out[size_t((b * T + i) * C + h * D + e)] += p * v[size_t((b * T + j) * C + h * D + e)];
        }
      }
  return out;
}
}  // namespace

struct AttnCase {
  int64_t B, T, C, H;
};
class Attention : public ::testing::TestWithParam<AttnCase> {};

TEST_P(Attention, CausalAndPaddedFromFusedQkv) {
  const auto [B, T, C, H] = GetParam();
  Tensor qkv = randn({B, T, 3 * C}, 181);
  Tensor q = qkv.narrow(2, 0, C), k = qkv.narrow(2, C, C), v = qkv.narrow(2, 2 * C, C);
  if (T > 1) {
    ASSERT_FALSE(q.is_contiguous());
  }
  const DVec qv = to_double(q), kv = to_double(k), vv = to_double(v);
  // causal
  Tensor y = ops::attention(q, k, v, H, true);
  EXPECT_EQ(y.shape(), (Shape{B, T, C}));
  SCION_EXPECT_CLOSE(y, ref_attention(qv, kv, vv, B, T, C, H, true, nullptr), 1e-5, 1e-4);
  // contiguous copies give the same bits as the strided views
  EXPECT_TRUE(same_bits(y, ops::attention(q.contiguous(), k.contiguous(), v.contiguous(), H, true)));
  // bidirectional with key padding: batch b keeps its first T - b keys (at least one)
  std::vector<uint8_t> mv(size_t(B * T));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) mv[size_t(b * T + t)] = t < std::max<int64_t>(1, T - 2 * b) ? 1 : 0;
  Tensor mask = mask_u8({B, T}, [&](int64_t i) { return mv[size_t(i)] != 0; });
  Tensor yb = ops::attention(q, k, v, H, false, mask);
  SCION_EXPECT_CLOSE(yb, ref_attention(qv, kv, vv, B, T, C, H, false, &mv), 1e-5, 1e-4);
  Tensor yn = ops::attention(q, k, v, H, false);
  SCION_EXPECT_CLOSE(yn, ref_attention(qv, kv, vv, B, T, C, H, false, nullptr), 1e-5, 1e-4);
  // causal and padded together
  SCION_EXPECT_CLOSE(ops::attention(q, k, v, H, true, mask), ref_attention(qv, kv, vv, B, T, C, H, true, &mv), 1e-5,
                     1e-4);
}

// The packed op reads q, k, v from one [B, T, 3C] tensor and writes one gradient: the same
// arithmetic as attention on narrow() views, so the same bits, forward and backward.
TEST_P(Attention, PackedQkvGivesTheBitsOfTheViews) {
  const auto [B, T, C, H] = GetParam();
  std::vector<uint8_t> mv(size_t(B * T));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) mv[size_t(b * T + t)] = t < std::max<int64_t>(1, T - 2 * b) ? 1 : 0;
  Tensor mask = mask_u8({B, T}, [&](int64_t i) { return mv[size_t(i)] != 0; });
  for (bool causal : {true, false})
    for (bool padded : {false, true}) {
      Tensor a = randn({B, T, 3 * C}, 187), b = a.clone();
      a.set_requires_grad(true);
      b.set_requires_grad(true);
      const Tensor m = padded ? mask : Tensor();
      Tensor ya = ops::attention(a.narrow(2, 0, C), a.narrow(2, C, C), a.narrow(2, 2 * C, C), H, causal, m);
      Tensor yb = ops::attention_packed(b, H, causal, m);
      EXPECT_TRUE(same_bits(ya, yb)) << causal << padded;
      Tensor gy = randn(ya.shape(), 188);
      ya.backward(gy);
      yb.backward(gy);
      EXPECT_TRUE(same_bits(a.grad(), b.grad())) << causal << padded;
    }
}

TEST(Attention, PackedQkvRefusesAWidthNotInThirds) {
  auto error = [](auto f) {
    try {
      f();
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(error([] { ops::attention_packed(Tensor::zeros({2, 3, 10}), 1, true); }).find("qkv must be [B, T, 3C]"),
            std::string::npos);
  EXPECT_NE(error([] { ops::attention_packed(Tensor::zeros({2, 3, 12}), 3, true); }).find("not divisible by 3 heads"),
            std::string::npos);
  EXPECT_NE(error([] { ops::attention_packed(Tensor::zeros({2, 3, 12}), 2, true, Tensor::zeros({2, 4})); })
                .find("key_padding_mask"),
            std::string::npos);
}

TEST(Attention, FullyMaskedRowsGiveZerosAndFiniteGradients) {
  const int64_t B = 2, T = 5, C = 6, H = 2;
  Tensor qkv = randn({B, T, 3 * C}, 185);
  qkv.set_requires_grad(true);
  // batch 0: key 0 hidden, so with causal masking query 0 sees nothing; batch 1: every key hidden
  std::vector<uint8_t> mv = {0, 1, 1, 1, 1, 0, 0, 0, 0, 0};
  Tensor mask = mask_u8({B, T}, [&](int64_t i) { return mv[size_t(i)] != 0; });
  Tensor q = qkv.narrow(2, 0, C), k = qkv.narrow(2, C, C), v = qkv.narrow(2, 2 * C, C);
  Tensor y = ops::attention(q, k, v, H, true, mask);
  SCION_EXPECT_CLOSE(y, ref_attention(to_double(q), to_double(k), to_double(v), B, T, C, H, true, &mv), 1e-5, 1e-4);
  y.backward(randn(y.shape(), 186));
  for (float g : qkv.grad().to_vector()) ASSERT_TRUE(std::isfinite(g));
  // nothing flows into the fully masked batch's keys and values
  auto g = qkv.grad().to_vector();
  for (int64_t t = 0; t < T; ++t)
    for (int64_t c = C; c < 3 * C; ++c) EXPECT_EQ(g[size_t((1 * T + t) * 3 * C + c)], 0.f);
}

INSTANTIATE_TEST_SUITE_P(Shapes, Attention,
                         ::testing::Values(AttnCase{1, 1, 4, 1}, AttnCase{2, 7, 12, 3}, AttnCase{2, 17, 15, 3},
                                           AttnCase{3, 33, 16, 2}, AttnCase{1, 65, 8, 4}));

// =============================== losses =========================================================

// A flat softmax over GPT-2's vocabulary: 50257 exponentials of about the same size. Summed
// one by one in f32 the log-sum-exp came out 1.4e-4 nats low (each addition rounds at the
// size of the running total); the f64 reference is matched to within float rounding.
TEST(Losses, CrossEntropyOnAFlatVocabularyRowMatchesF64) {
  const int64_t V = 50257, N = 3;
  Tensor logits = randn({N, V}, 4242, 1e-3f);
  Tensor t = ids({N}, 4243, 0, V);
  const DVec x = to_double(logits);
  const auto tv = t.to_vector_i64();
  double s = 0;
  std::vector<double> lse(static_cast<size_t>(N));
  for (int64_t r = 0; r < N; ++r) {
    double mx = -1e300, z = 0;
    for (int64_t i = 0; i < V; ++i) mx = std::max(mx, x[size_t(r * V + i)]);
    for (int64_t i = 0; i < V; ++i) z += std::exp(x[size_t(r * V + i)] - mx);
    lse[size_t(r)] = mx + std::log(z);
    s += lse[size_t(r)] - x[size_t(r * V + tv[size_t(r)])];
  }
  EXPECT_NEAR(ops::cross_entropy(logits, t).item(), s / double(N), 1e-6);
  // log_softmax shares the normaliser: every entry is x - lse.
  const DVec ls = to_double(ops::log_softmax(logits));
  for (int64_t r = 0; r < N; ++r)
    for (int64_t i : {int64_t(0), V / 2, V - 1})
      EXPECT_NEAR(ls[size_t(r * V + i)], x[size_t(r * V + i)] - lse[size_t(r)], 1e-6) << r << "," << i;
  // and softmax sums to one to within the f32 rounding of its entries
  const DVec sm = to_double(ops::softmax(logits));
  double total = 0;
  for (int64_t i = 0; i < V; ++i) total += sm[size_t(i)];
  EXPECT_NEAR(total, 1.0, 1e-5);
}

TEST(Losses, CrossEntropyWithIgnoreIndex) {
  for (auto [N, V] : {std::pair<int64_t, int64_t>{7, 33}, {1, 3}, {17, 129}, {65, 17}}) {
    Tensor logits = randn({N, V}, 191, 2.f);
    Tensor t = ids({N}, 192, 0, V);
    if (N > 2) t.data<int64_t>()[1] = -100;
    const DVec x = to_double(logits);
    const auto tv = t.to_vector_i64();
    double s = 0;
    int64_t cnt = 0;
    for (int64_t r = 0; r < N; ++r) {
      if (tv[size_t(r)] == -100) continue;
      DVec row(x.begin() + r * V, x.begin() + (r + 1) * V);
      s -= ref_softmax_rows(row, 1, V, true)[size_t(tv[size_t(r)])];
      ++cnt;
    }
    Tensor loss = ops::cross_entropy(logits, t);
    EXPECT_EQ(loss.dim(), 0);
    EXPECT_NEAR(loss.item(), s / double(cnt), 1e-5 * std::max(1.0, s / double(cnt)));
    EXPECT_NEAR(ops::cross_entropy(logits, t.to(DType::i32)).item(), s / double(cnt), 1e-5 * std::max(1.0, s / double(cnt)));
  }
  // [B, T, V] logits with [B, T] targets and a custom ignore index
  Tensor logits = randn({2, 5, 11}, 193);
  Tensor t = ids({2, 5}, 194, 0, 11);
  t.data<int64_t>()[3] = 0;
  t.data<int64_t>()[7] = 0;
  const DVec x = to_double(logits);
  const auto tv = t.to_vector_i64();
  double s = 0;
  int64_t cnt = 0;
  for (int64_t r = 0; r < 10; ++r) {
    if (tv[size_t(r)] == 0) continue;
    DVec row(x.begin() + r * 11, x.begin() + (r + 1) * 11);
    s -= ref_softmax_rows(row, 1, 11, true)[size_t(tv[size_t(r)])];
    ++cnt;
  }
  EXPECT_NEAR(ops::cross_entropy(logits, t, 0).item(), s / double(cnt), 1e-5);
  // every row ignored: zero loss, not NaN
  Tensor all_ignored = Tensor::full({3}, -100, DType::i64);
  EXPECT_EQ(ops::cross_entropy(randn({3, 5}, 1), all_ignored).item(), 0.f);
  // strided logits
  Tensor lt = randn({33, 4}, 195).transpose(0, 1);
  Tensor t4 = ids({4}, 196, 0, 33);
  EXPECT_EQ(ops::cross_entropy(lt, t4).item(), ops::cross_entropy(lt.contiguous(), t4).item());
}

namespace {
// Mean over masked rows of -sum p log q (kl = false) or sum p (log p - log q).
double ref_soft(const DVec& x, const DVec& t, int64_t N, int64_t V, double T, const std::vector<uint8_t>* mask,
                bool kl) {
  const DVec lq = ref_softmax_rows(x, N, V, true, T), lp = ref_softmax_rows(t, N, V, true, T);
  double s = 0;
  int64_t cnt = 0;
  for (int64_t r = 0; r < N; ++r) {
    if (mask && !(*mask)[size_t(r)]) continue;
    ++cnt;
    for (int64_t i = 0; i < V; ++i) {
      const double p = std::exp(lp[size_t(r * V + i)]);
      s += kl ? p * (lp[size_t(r * V + i)] - lq[size_t(r * V + i)]) : -p * lq[size_t(r * V + i)];
    }
  }
  return cnt ? s / double(cnt) : 0.0;
}
}  // namespace

TEST(Losses, SoftCrossEntropyAndKl) {
  for (auto [N, V] : {std::pair<int64_t, int64_t>{7, 33}, {1, 3}, {17, 129}}) {
    Tensor x = randn({N, V}, 201, 2.f), t = randn({N, V}, 202, 2.f);
    std::vector<uint8_t> mv(static_cast<size_t>(N));
    for (int64_t r = 0; r < N; ++r) mv[size_t(r)] = (r % 3 != 1) ? 1 : 0;
    Tensor m = mask_u8({N}, [&](int64_t i) { return mv[size_t(i)] != 0; });
    const DVec xv = to_double(x), tv = to_double(t);
    for (float T : {1.f, 2.f}) {
      const double sce = ref_soft(xv, tv, N, V, T, nullptr, false), scem = ref_soft(xv, tv, N, V, T, &mv, false);
      const double kl = ref_soft(xv, tv, N, V, T, nullptr, true), klm = ref_soft(xv, tv, N, V, T, &mv, true);
      EXPECT_NEAR(ops::soft_cross_entropy(x, t, T).item(), sce, 1e-5 * std::max(1.0, sce));
      EXPECT_NEAR(ops::soft_cross_entropy(x, t, T, m).item(), scem, 1e-5 * std::max(1.0, scem));
      EXPECT_NEAR(ops::kl_div(x, t, T).item(), kl, 2e-6 + 1e-5 * kl);
      EXPECT_NEAR(ops::kl_div(x, t, T, m).item(), klm, 2e-6 + 1e-5 * klm);
    }
    // KL of a distribution with itself is 0
    EXPECT_NEAR(ops::kl_div(x, x, 2.f).item(), 0.0, 1e-6);
  }
  // 3-D logits and an all-zero mask
  Tensor x = randn({2, 3, 9}, 203), t = randn({2, 3, 9}, 204);
  EXPECT_NEAR(ops::kl_div(x, t, 1.f).item(), ref_soft(to_double(x), to_double(t), 6, 9, 1, nullptr, true), 1e-5);
  EXPECT_EQ(ops::soft_cross_entropy(x, t, 1.f, Tensor::zeros({6}, DType::u8)).item(), 0.f);
}

TEST(Losses, Mse) {
  for (int64_t n : kSizes) {
    Tensor a = randn({n, 3}, 211), b = randn({n, 3}, 212);
    const DVec av = to_double(a), bv = to_double(b);
    double s = 0;
    for (size_t i = 0; i < av.size(); ++i) s += (av[i] - bv[i]) * (av[i] - bv[i]);
    EXPECT_NEAR(ops::mse(a, b).item(), s / double(av.size()), 1e-6 * std::max(1.0, s));
  }
}

// =============================== optimizer helpers ==============================================

TEST(Optim, AdamWMatchesDoubleReference) {
  for (int64_t n : {int64_t(1), int64_t(17), int64_t(129), int64_t(40001)}) {
    ops::AdamWConfig cfg;
    cfg.lr = 1e-2f;
    cfg.beta1 = 0.9f;
    cfg.beta2 = 0.95f;
    cfg.eps = 1e-8f;
    cfg.weight_decay = 0.1f;
    Tensor p = randn({n}, 221), m = Tensor::zeros({n}), v = Tensor::zeros({n});
    DVec P = to_double(p), M(size_t(n), 0.0), Vv(size_t(n), 0.0);
    for (int64_t step = 1; step <= 4; ++step) {
      Tensor g = randn({n}, 222 + uint64_t(step));
      const DVec G = to_double(g);
      ops::adamw_step(p, g, m, v, step, cfg);
      const double bc1 = 1 - std::pow(double(cfg.beta1), double(step));
      const double bc2 = 1 - std::pow(double(cfg.beta2), double(step));
      for (int64_t i = 0; i < n; ++i) {
        const size_t u = size_t(i);
        P[u] *= 1 - double(cfg.lr) * double(cfg.weight_decay);  // decoupled decay first
        M[u] = double(cfg.beta1) * M[u] + (1 - double(cfg.beta1)) * G[u];
        Vv[u] = double(cfg.beta2) * Vv[u] + (1 - double(cfg.beta2)) * G[u] * G[u];
        const double denom = std::sqrt(Vv[u]) / std::sqrt(bc2) + double(cfg.eps);
        P[u] -= double(cfg.lr) / bc1 * M[u] / denom;
      }
      SCION_EXPECT_CLOSE(m, M, 1e-6, 1e-5);
      SCION_EXPECT_CLOSE(v, Vv, 1e-7, 1e-5);
      SCION_EXPECT_CLOSE(p, P, 2e-6, 1e-5);
    }
  }
}

TEST(Optim, GlobalNormAndClip) {
  Tensor a = randn({17, 3}, 231), b = randn({129}, 232), c = randn({9, 10}, 233).narrow(1, 2, 5);
  double s = 0;
  for (const Tensor* t : {&a, &b, &c})
    for (double x : to_double(*t)) s += x * x;
  const double norm = std::sqrt(s);
  EXPECT_NEAR(ops::global_norm({a, b, c, Tensor()}), norm, 1e-5 * norm);
  // clip above: every gradient scaled by max_norm / norm
  Tensor ga = a.clone(), gb = b.clone();
  double s2 = 0;
  for (const Tensor* t : {&a, &b})
    for (double x : to_double(*t)) s2 += x * x;
  const double n2 = std::sqrt(s2);
  const float before = ops::clip_grad_norm({ga, gb}, 1.f);
  EXPECT_NEAR(before, n2, 1e-5 * n2);
  DVec ra = to_double(a), rb = to_double(b);
  for (double& x : ra) x *= 1.0 / n2;
  for (double& x : rb) x *= 1.0 / n2;
  SCION_EXPECT_CLOSE(ga, ra, 1e-6, 1e-5);
  SCION_EXPECT_CLOSE(gb, rb, 1e-6, 1e-5);
  EXPECT_NEAR(ops::global_norm({ga, gb}), 1.0, 1e-5);
  // below the threshold nothing changes
  Tensor gc = a.clone();
  ops::clip_grad_norm({gc}, 1e6f);
  EXPECT_TRUE(same_bits(gc, a));
}

// The runtime folds the clip into AdamW (core/runtime/executor.cpp): an update on the unclipped
// gradient with grad_scale = clip_factor must equal clip_grad_norm then the plain update, bit
// for bit (both take the f32 product g * factor), above and below the clip threshold.
TEST(Optim, AdamWWithTheClipFactorEqualsClippingFirst) {
  for (float max_norm : {0.5f, 1e6f}) {
    ops::AdamWConfig cfg;
    cfg.lr = 1e-2f;
    cfg.weight_decay = 0.1f;
    Tensor p1 = randn({40001}, 241), p2 = p1.clone();
    Tensor m1 = Tensor::zeros({40001}), v1 = Tensor::zeros({40001}), m2 = m1.clone(), v2 = v1.clone();
    for (int64_t step = 1; step <= 3; ++step) {
      const Tensor g = randn({40001}, 242 + uint64_t(step));
      Tensor clipped = g.clone();
      const float norm = ops::clip_grad_norm({clipped}, max_norm);
      ops::adamw_step(p1, clipped, m1, v1, step, cfg);
      ops::AdamWConfig folded = cfg;
      folded.grad_scale = ops::clip_factor(ops::global_norm({g}), max_norm);
      EXPECT_EQ(folded.grad_scale == 1.f, norm <= max_norm);
      ops::adamw_step(p2, g, m2, v2, step, folded);
      EXPECT_TRUE(same_bits(p1, p2)) << "max_norm " << max_norm << " step " << step;
      EXPECT_TRUE(same_bits(m1, m2));
      EXPECT_TRUE(same_bits(v1, v2));
    }
  }
}

// =============================== views ===========================================================

TEST(Views, ReshapeTransposePermuteNarrow) {
  Tensor a = Tensor::from_vector([] {
    std::vector<float> v(60);
    for (int i = 0; i < 60; ++i) v[size_t(i)] = float(i);
    return v;
  }(), {3, 4, 5});
  // reshape of a contiguous tensor is a view
  Tensor r = a.reshape({12, 5});
  EXPECT_EQ(r.raw_data(), a.raw_data());
  EXPECT_EQ(r.strides(), (Strides{5, 1}));
  EXPECT_EQ(a.reshape({-1, 3}).shape(), (Shape{20, 3}));
  // transpose: strides swap, values follow
  Tensor t = a.transpose(0, 2);
  EXPECT_EQ(t.shape(), (Shape{5, 4, 3}));
  EXPECT_EQ(t.strides(), (Strides{1, 5, 20}));
  EXPECT_FALSE(t.is_contiguous());
  auto tv = t.to_vector();
  for (int64_t i = 0; i < 60; ++i) {
    auto idx = unravel(i, t.shape());
    EXPECT_EQ(tv[size_t(i)], float(idx[2] * 20 + idx[1] * 5 + idx[0]));
  }
  // permute
  Tensor p = a.permute({1, 2, 0});
  EXPECT_EQ(p.shape(), (Shape{4, 5, 3}));
  auto pv = p.to_vector();
  for (int64_t i = 0; i < 60; ++i) {
    auto idx = unravel(i, p.shape());
    EXPECT_EQ(pv[size_t(i)], float(idx[2] * 20 + idx[0] * 5 + idx[1]));
  }
  // reshape of a non-contiguous tensor copies in logical order
  Tensor pr = p.reshape({20, 3});
  EXPECT_TRUE(pr.is_contiguous());
  EXPECT_EQ(pr.to_vector(), pv);
  // narrow shares storage with an offset
  Tensor n = a.narrow(1, 1, 2);
  EXPECT_EQ(n.shape(), (Shape{3, 2, 5}));
  EXPECT_EQ(n.offset(), 5);
  auto nv = n.to_vector();
  for (int64_t i = 0; i < 30; ++i) {
    auto idx = unravel(i, n.shape());
    EXPECT_EQ(nv[size_t(i)], float(idx[0] * 20 + (idx[1] + 1) * 5 + idx[2]));
  }
  // writes through a view reach the base
  n.narrow(2, 4, 1).fill_(-1.0);
  EXPECT_EQ(a.to_vector()[9], -1.f);
  EXPECT_EQ(a.to_vector()[14], -1.f);
  EXPECT_EQ(a.to_vector()[4], 4.f);
  // contiguous
  Tensor c = t.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.to_vector(), t.to_vector());
  EXPECT_NE(c.raw_data(), t.raw_data());
  EXPECT_EQ(a.contiguous().raw_data(), a.raw_data());
  // unsqueeze / squeeze
  Tensor u = a.unsqueeze(1);
  EXPECT_EQ(u.shape(), (Shape{3, 1, 4, 5}));
  EXPECT_EQ(a.unsqueeze(-1).shape(), (Shape{3, 4, 5, 1}));
  EXPECT_EQ(u.squeeze(1).shape(), (Shape{3, 4, 5}));
  EXPECT_EQ(u.squeeze(1).to_vector(), a.to_vector());
  Tensor tu = t.unsqueeze(0);
  EXPECT_EQ(tu.shape(), (Shape{1, 5, 4, 3}));
  EXPECT_EQ(tu.to_vector(), t.to_vector());
  // a transposed narrow of a transposed tensor
  Tensor w = a.transpose(1, 2).narrow(1, 1, 3).transpose(0, 1);  // [3, 3, 4]
  auto wv = w.to_vector();
  for (int64_t i = 0; i < w.numel(); ++i) {
    auto idx = unravel(i, w.shape());  // (j in narrowed axis 2, i0, k in axis 1)
    const float expect = i == -1 ? 0 : a.to_vector()[size_t(idx[1] * 20 + idx[2] * 5 + idx[0] + 1)];
    EXPECT_EQ(wv[size_t(i)], expect);
  }
}

// =============================== dtype conversions ==============================================

namespace {
float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
uint32_t to_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
std::vector<uint16_t> half_bits(const Tensor& t) {
  Tensor c = t.contiguous();
  const uint16_t* p = c.data<uint16_t>();
  return std::vector<uint16_t>(p, p + c.numel());
}
Tensor f32_from_bits(const std::vector<uint32_t>& bits) {
  std::vector<float> v;
  for (uint32_t b : bits) v.push_back(from_bits(b));
  return Tensor::from_vector(v, {int64_t(v.size())});
}
}  // namespace

TEST(Convert, Bf16Bits) {
  struct Case {
    uint32_t in;
    uint16_t out;
  };
  const std::vector<Case> cases = {
      {0x3f800000, 0x3f80},  // 1
      {0x3f808000, 0x3f80},  // tie, even stays
      {0x3f818000, 0x3f82},  // tie, odd rounds up
      {0x3f808001, 0x3f81},  // just above tie
      {0x3f807fff, 0x3f80},  // just below tie
      {0xbf808001, 0xbf81},  // negative
      {0x7f800000, 0x7f80},  // inf
      {0xff800000, 0xff80},  // -inf
      {0x7f7fffff, 0x7f80},  // max float rounds to inf
      {0x7f7f0000, 0x7f7f},  // max bf16
      {0x00000000, 0x0000},  {0x80000000, 0x8000},  // signed zeros
      {0x00010000, 0x0001},                        // smallest bf16 subnormal
      {0x00008000, 0x0000},                        // tie between 0 and the smallest subnormal -> even
      {0x00018000, 0x0002},                        // tie, odd -> up
      {0x00000001, 0x0000},                        // tiny f32 subnormal
      {0x007fffff, 0x0080},                        // largest f32 subnormal rounds into the normals
  };
  std::vector<uint32_t> in;
  for (auto& c : cases) in.push_back(c.in);
  Tensor x = f32_from_bits(in);
  Tensor h = x.to(DType::bf16);
  EXPECT_EQ(h.dtype(), DType::bf16);
  auto hb = half_bits(h);
  for (size_t i = 0; i < cases.size(); ++i)
    EXPECT_EQ(hb[i], cases[i].out) << std::hex << "f32 0x" << cases[i].in;
  // back to f32: exact
  auto back = h.to(DType::f32).to_vector();
  for (size_t i = 0; i < cases.size(); ++i) EXPECT_EQ(to_bits(back[i]), uint32_t(cases[i].out) << 16);
  // NaN stays NaN (quiet), both signs
  Tensor nan = f32_from_bits({0x7fc00000, 0x7f800001, 0xffc00001});
  for (uint16_t b : half_bits(nan.to(DType::bf16))) {
    EXPECT_EQ(b & 0x7f80, 0x7f80);
    EXPECT_NE(b & 0x007f, 0);
  }
  // every bf16 value round-trips exactly through f32
  std::vector<float> all;
  for (uint32_t b = 0; b < 65536; ++b) all.push_back(from_bits(b << 16));
  Tensor allt = Tensor::from_vector(all, {65536});
  auto rb = half_bits(allt.to(DType::bf16));
  for (uint32_t b = 0; b < 65536; ++b) {
    const bool is_nan = (b & 0x7f80) == 0x7f80 && (b & 0x7f);
    if (is_nan) EXPECT_TRUE((rb[b] & 0x7f80) == 0x7f80 && (rb[b] & 0x7f)) << b;
    else if (rb[b] != b) ADD_FAILURE() << "bf16 0x" << std::hex << b << " -> 0x" << rb[b];
  }
}

TEST(Convert, F16Bits) {
  struct Case {
    float in;
    uint16_t out;
  };
  const float sub = std::ldexp(1.f, -24);  // smallest f16 subnormal
  const std::vector<Case> cases = {
      {1.f, 0x3c00},
      {-2.f, 0xc000},
      {65504.f, 0x7bff},                       // max
      {65519.f, 0x7bff},                       // below the rounding boundary
      {65520.f, 0x7c00},                       // tie at the boundary -> inf
      {1e6f, 0x7c00},
      {-1e6f, 0xfc00},
      {INFINITY, 0x7c00},
      {-INFINITY, 0xfc00},
      {std::ldexp(1.f, -14), 0x0400},          // smallest normal
      {sub, 0x0001},
      {0.5f * sub, 0x0000},                    // tie between 0 and sub -> even (0)
      {std::nextafter(0.5f * sub, 1.f), 0x0001},
      {1.5f * sub, 0x0002},                    // tie, odd -> up
      {2.5f * sub, 0x0002},                    // tie, even stays
      {1023.f * sub, 0x03ff},                  // largest subnormal
      {1023.5f * sub, 0x0400},                 // tie rounds up into the normals
      {1.f + std::ldexp(1.f, -11), 0x3c00},    // tie, even
      {1.f + 3 * std::ldexp(1.f, -11), 0x3c02},  // tie, odd -> up
      {1.f + std::ldexp(1.f, -11) + std::ldexp(1.f, -20), 0x3c01},
      {0.f, 0x0000},
      {-0.f, 0x8000},
      {-sub, 0x8001},
      {std::ldexp(1.f, -30), 0x0000},
      {-std::ldexp(1.f, -30), 0x8000},
      {0.1f, 0x2e66},
  };
  std::vector<float> in;
  for (auto& c : cases) in.push_back(c.in);
  Tensor h = Tensor::from_vector(in, {int64_t(in.size())}).to(DType::f16);
  EXPECT_EQ(h.dtype(), DType::f16);
  auto hb = half_bits(h);
  for (size_t i = 0; i < cases.size(); ++i)
    EXPECT_EQ(hb[i], cases[i].out) << "f32 " << cases[i].in << " (case " << i << ")";
  // NaN
  auto nb = half_bits(f32_from_bits({0x7fc00000, 0xff800001}).to(DType::f16));
  for (uint16_t b : nb) {
    EXPECT_EQ(b & 0x7c00, 0x7c00);
    EXPECT_NE(b & 0x03ff, 0);
  }
  // every f16 value: f16 -> f32 is exact (compare with the compiler's _Float16) and f32 -> f16
  // gives the same bits back
  std::vector<float> all;
  for (uint32_t b = 0; b < 65536; ++b) {
    uint16_t hbits = uint16_t(b);
    _Float16 hv;
    std::memcpy(&hv, &hbits, 2);
    all.push_back(float(hv));
  }
  Tensor ht = Tensor::empty({65536}, DType::f16);
  for (uint32_t b = 0; b < 65536; ++b) ht.data<uint16_t>()[b] = uint16_t(b);
  auto f = ht.to(DType::f32).to_vector();
  auto rb = half_bits(Tensor::from_vector(all, {65536}).to(DType::f16));
  int64_t bad = 0;
  for (uint32_t b = 0; b < 65536; ++b) {
    const bool is_nan = (b & 0x7c00) == 0x7c00 && (b & 0x3ff);
    if (is_nan) {
      if (!std::isnan(f[b])) ++bad;
      continue;
    }
    if (to_bits(f[b]) != to_bits(all[b])) ++bad;
    if (rb[b] != b) ++bad;
  }
  EXPECT_EQ(bad, 0);
}

TEST(Convert, F16AgainstCompilerOnRandomFloats) {
  // Random f32 bit patterns across the whole range, and dense around the f16 range.
  std::vector<float> v;
  for (uint64_t i = 0; i < 200000; ++i) {
    uint32_t bits = uint32_t(random_bits(77, i));
    if (i % 2) bits = (bits & 0x807fffffu) | ((0x60u + (bits >> 23) % 0x30u) << 23);  // exponents 2^-31..2^16
    float f = from_bits(bits);
    if (std::isnan(f)) continue;
    v.push_back(f);
  }
  Tensor t = Tensor::from_vector(v, {int64_t(v.size())});
  auto hb = half_bits(t.to(DType::f16));
  auto bb = half_bits(t.to(DType::bf16));
  int64_t bad16 = 0, bad_bf = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    _Float16 h = (_Float16)v[i];
    uint16_t e;
    std::memcpy(&e, &h, 2);
    if (e != hb[i] && bad16++ < 5) ADD_FAILURE() << "f16 of " << v[i] << ": got " << hb[i] << ", want " << e;
    // bf16 reference: round the f32 to 8 significant bits with RNE through double arithmetic
    const double d = v[i];
    uint16_t eb;
    if (std::isinf(d)) {
      eb = uint16_t(to_bits(v[i]) >> 16);
    } else {
      const uint32_t u = to_bits(v[i]);
      const uint32_t lo = u & 0xffffu, hi = u >> 16;
      eb = uint16_t(hi + ((lo > 0x8000u || (lo == 0x8000u && (hi & 1))) ? 1 : 0));
    }
    if (eb != bb[i] && bad_bf++ < 5) ADD_FAILURE() << "bf16 of " << v[i] << ": got " << bb[i] << ", want " << eb;
  }
  EXPECT_EQ(bad16, 0);
  EXPECT_EQ(bad_bf, 0);
}

TEST(Convert, StridedAndIntegerConversions) {
  Tensor a = randn({7, 5}, 241).transpose(0, 1);
  Tensor h = a.to(DType::bf16);
  EXPECT_TRUE(h.is_contiguous());
  EXPECT_EQ(h.shape(), (Shape{5, 7}));
  auto av = a.to_vector();
  auto hb = half_bits(h);
  for (size_t i = 0; i < av.size(); ++i) EXPECT_EQ(hb[i], f32_to_bf16(av[i]));
  Tensor h16 = a.to(DType::f16);
  auto h16b = half_bits(h16);
  for (size_t i = 0; i < av.size(); ++i) EXPECT_EQ(h16b[i], f32_to_f16(av[i]));
  // f16 <-> bf16 directly
  auto cross = h16.to(DType::bf16).to(DType::f32).to_vector();
  for (size_t i = 0; i < av.size(); ++i) EXPECT_EQ(cross[i], bf16_to_f32(f32_to_bf16(f16_to_f32(h16b[i]))));
  // integers
  Tensor i = Tensor::from_vector_i64({-3, 0, 7, 1 << 20}, {4});
  EXPECT_EQ(i.to(DType::f32).to_vector(), (std::vector<float>{-3.f, 0.f, 7.f, float(1 << 20)}));
  EXPECT_EQ(i.to(DType::i32).to(DType::i64).to_vector_i64(), (std::vector<int64_t>{-3, 0, 7, 1 << 20}));
  // i64 beyond 2^53 survives an i64 -> i64 copy
  const int64_t big = (int64_t(1) << 60) + 1;
  Tensor bi = Tensor::from_vector_i64({big, -big}, {2});
  EXPECT_EQ(bi.transpose(0, 0).contiguous().to_vector_i64(), (std::vector<int64_t>{big, -big}));
  EXPECT_EQ(bi.clone().to_vector_i64(), (std::vector<int64_t>{big, -big}));
}
