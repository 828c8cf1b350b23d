// Op values against plain double-precision references, on several shapes including odd
// sizes that are not multiples of the vector width.
#include <numeric>

#include "ops/check.h"

using namespace scion;
using namespace scion::test;

namespace {
std::vector<double> d(const Tensor& t) {
  auto v = t.to_vector();
  return {v.begin(), v.end()};
}
const int64_t kSizes[] = {1, 3, 7, 17, 33, 65, 129};
}  // namespace

TEST(Values, ElementwiseAndUnary) {
  for (int64_t n : kSizes) {
    Tensor a = rnd({2, n}, uint64_t(n)), b = rnd({n}, uint64_t(n) + 1, 0.5f, 2.f);
    auto av = d(a), bv = d(b);
    std::vector<double> add, mul, div, gelu, tanh_, exp_;
    for (int64_t i = 0; i < 2 * n; ++i) {
      const double x = av[size_t(i)], y = bv[size_t(i % n)];
      add.push_back(x + y), mul.push_back(x * y), div.push_back(x / y);
      gelu.push_back(0.5 * x * (1 + std::tanh(std::sqrt(2 / M_PI) * (x + 0.044715 * x * x * x))));
      tanh_.push_back(std::tanh(x)), exp_.push_back(std::exp(x));
    }
    expect_close(ops::add(a, b), add, 1e-6, 1e-6, "add");
    expect_close(ops::mul(a, b), mul, 1e-6, 1e-6, "mul");
    expect_close(ops::div(a, b), div, 1e-6, 1e-5, "div");
    expect_close(ops::gelu(a), gelu, 1e-6, 1e-5, "gelu");
    expect_close(ops::tanh(a), tanh_, 1e-6, 1e-5, "tanh");
    expect_close(ops::exp(a), exp_, 1e-6, 1e-6, "exp");
  }
  Tensor big = rnd({1000}, 3, -80.f, 80.f);
  std::vector<double> e;
  for (double x : d(big)) e.push_back(std::exp(x));
  expect_close(ops::exp(big), e, 1e-30, 3e-7, "exp over the float range");
}

TEST(Values, ReductionsAndMax) {
  Tensor a = rnd({3, 17, 5}, 1);
  auto av = d(a);
  std::vector<double> s1(15, 0.0), mx(15, -1e30);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 17; ++j)
      for (int k = 0; k < 5; ++k) {
        const double x = av[size_t((i * 17 + j) * 5 + k)];
        s1[size_t(i * 5 + k)] += x;
        mx[size_t(i * 5 + k)] = std::max(mx[size_t(i * 5 + k)], x);
      }
  expect_close(ops::sum(a, {1}), s1, 1e-5, 1e-5, "sum");
  expect_close(ops::max(a, 1), mx, 0, 0, "max");
  expect_close(ops::sum_all(a), {std::accumulate(av.begin(), av.end(), 0.0)}, 1e-4, 1e-6, "sum_all");
}

TEST(Values, MatmulTransposesAndLinear) {
  for (int64_t M : {1, 7, 33})
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        const int64_t K = 17, N = 9;
        Tensor a = rnd(ta ? Shape{K, M} : Shape{M, K}, 1), b = rnd(tb ? Shape{N, K} : Shape{K, N}, 2);
        auto av = d(a), bv = d(b);
        std::vector<double> ref(size_t(M * N), 0.0);
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j)
            for (int64_t k = 0; k < K; ++k)
              ref[size_t(i * N + j)] += av[size_t(ta ? k * M + i : i * K + k)] * bv[size_t(tb ? j * K + k : k * N + j)];
        expect_close(ops::matmul(a, b, ta, tb), ref, 1e-5, 1e-5, "matmul");
      }
  Tensor x = rnd({5, 7}, 3), w = rnd({7, 3}, 4), bias = rnd({3}, 5);
  auto xv = d(x), wv = d(w), bv = d(bias);
  std::vector<double> ref;
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 3; ++j) {
      double s = bv[size_t(j)];
      for (int k = 0; k < 7; ++k) s += xv[size_t(i * 7 + k)] * wv[size_t(k * 3 + j)];
      ref.push_back(s);
    }
  expect_close(ops::linear(x, w, bias, true), ref, 1e-5, 1e-5, "linear [in,out]");
  expect_close(ops::linear(x, w.transpose(0, 1).contiguous(), bias, false), ref, 1e-5, 1e-5, "linear [out,in]");
}

TEST(Values, SoftmaxLayernormCrossEntropy) {
  for (int64_t V : {1, 7, 129, 1000}) {
    Tensor x = rnd({3, V}, uint64_t(V), -5.f, 5.f);
    auto xv = d(x);
    std::vector<double> sm, lsm, ln;
    Tensor targets = Tensor::from_vector_i64({0, V - 1, -100}, {3});
    double ce = 0;
    for (int r = 0; r < 3; ++r) {
      double mx = -1e30, z = 0, mean = 0, var = 0;
      for (int64_t i = 0; i < V; ++i) mx = std::max(mx, xv[size_t(r * V + i)]), mean += xv[size_t(r * V + i)];
      for (int64_t i = 0; i < V; ++i) z += std::exp(xv[size_t(r * V + i)] - mx);
      mean /= double(V);
      for (int64_t i = 0; i < V; ++i) var += std::pow(xv[size_t(r * V + i)] - mean, 2);
      var /= double(V);
      for (int64_t i = 0; i < V; ++i) {
        sm.push_back(std::exp(xv[size_t(r * V + i)] - mx) / z);
        lsm.push_back(xv[size_t(r * V + i)] - mx - std::log(z));
        ln.push_back((xv[size_t(r * V + i)] - mean) / std::sqrt(var + 1e-5));
      }
      if (r < 2) ce += mx + std::log(z) - xv[size_t(r * V + (r == 0 ? 0 : V - 1))];
    }
    expect_close(ops::softmax(x), sm, 1e-6, 1e-5, "softmax");
    expect_close(ops::log_softmax(x), lsm, 1e-5, 1e-5, "log_softmax");
    expect_close(ops::layernorm(x, Tensor::ones({V}), Tensor::zeros({V})), ln, 1e-4, 1e-4, "layernorm");
    expect_close(ops::cross_entropy(x, targets), {ce / 2}, 1e-5, 1e-5, "cross_entropy (one row ignored)");
  }
}

TEST(Values, AttentionMatchesTheDefinition) {
  const int64_t B = 2, T = 7, H = 3, D = 5, C = H * D;
  Tensor q = rnd({B, T, C}, 1), k = rnd({B, T, C}, 2), v = rnd({B, T, C}, 3);
  Tensor pad = Tensor::from_vector({1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0}, {B, T}).to(DType::u8);
  for (int causal = 0; causal < 2; ++causal) {
    auto qv = d(q), kv = d(k), vv = d(v);
    std::vector<double> ref(size_t(B * T * C), 0.0);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < H; ++h)
        for (int64_t i = 0; i < T; ++i) {
          std::vector<double> s(size_t(T), -1e300);
          double mx = -1e300;
          for (int64_t j = 0; j < T; ++j) {
            if ((causal && j > i) || (!causal && pad.data<uint8_t>()[b * T + j] == 0)) continue;
            double dot = 0;
            for (int64_t e = 0; e < D; ++e) dot += qv[size_t((b * T + i) * C + h * D + e)] * kv[size_t((b * T + j) * C + h * D + e)];
            s[size_t(j)] = dot / std::sqrt(double(D));
            mx = std::max(mx, s[size_t(j)]);
          }
          double z = 0;
          for (auto& x : s) z += (x = x < -1e299 ? 0 : std::exp(x - mx));
          for (int64_t j = 0; j < T; ++j)
            for (int64_t e = 0; e < D; ++e)
              ref[size_t((b * T + i) * C + h * D + e)] += s[size_t(j)] / z * vv[size_t((b * T + j) * C + h * D + e)];
        }
    Tensor got = causal ? ops::attention(q, k, v, H, true) : ops::attention(q, k, v, H, false, pad);
    expect_close(got, ref, 1e-5, 1e-4, causal ? "causal attention" : "padded attention");
  }
}

TEST(Values, OptimizerHelpers) {
  Tensor p = rnd({33}, 1), g = rnd({33}, 2), m = Tensor::zeros({33}), v = Tensor::zeros({33});
  auto pv = d(p), gv = d(g);
  ops::AdamWConfig c;
  c.lr = 0.01f;
  c.weight_decay = 0.1f;
  std::vector<double> mm(33, 0), vv(33, 0);
  for (int step = 1; step <= 3; ++step) {
    ops::adamw_step(p, g, m, v, step, c);
    for (size_t i = 0; i < 33; ++i) {  // PyTorch's order: decay, then the bias-corrected step
      pv[i] *= 1 - c.lr * c.weight_decay;
      mm[i] = 0.9 * mm[i] + 0.1 * gv[i];
      vv[i] = 0.999 * vv[i] + 0.001 * gv[i] * gv[i];
      const double mh = mm[i] / (1 - std::pow(0.9, step)), vh = vv[i] / (1 - std::pow(0.999, step));
      pv[i] -= c.lr * mh / (std::sqrt(vh) + c.eps);
    }
  }
  expect_close(p, pv, 1e-6, 1e-5, "adamw");
  Tensor a = Tensor::full({10}, 3.0), b = Tensor::full({5}, 4.0);
  EXPECT_NEAR(ops::global_norm({a, b}), std::sqrt(90.0 + 80.0), 1e-4);
  const float before = ops::clip_grad_norm({a, b}, 1.0f);
  EXPECT_NEAR(before, std::sqrt(170.0), 1e-4);
  EXPECT_NEAR(ops::global_norm({a, b}), 1.0, 1e-4);
}
