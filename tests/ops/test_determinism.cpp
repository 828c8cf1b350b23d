// The same inputs give the same bits with 1 and with 2 threads.
#include <cstring>

#include "ops/check.h"
#include "scion/threads.h"

using namespace scion;
using namespace scion::test;

namespace {
std::vector<std::vector<float>> run_all() {
  std::vector<std::vector<float>> out;
  Tensor a = rnd({300, 257}, 1), b = rnd({257, 129}, 2);
  out.push_back(ops::matmul(a, b).to_vector());
  Tensor x = rnd({4, 33, 64}, 3).set_requires_grad(true), w = rnd({64, 96}, 4).set_requires_grad(true),
         bias = rnd({96}, 5).set_requires_grad(true);
  ops::sum_all(ops::mul(ops::linear(x, w, bias, true), rnd({4, 33, 96}, 6))).backward();
  out.push_back(x.grad().to_vector()), out.push_back(w.grad().to_vector()), out.push_back(bias.grad().to_vector());
  Tensor lx = rnd({200, 65}, 7).set_requires_grad(true), lw = rnd({65}, 8).set_requires_grad(true),
         lb = rnd({65}, 9).set_requires_grad(true);
  ops::sum_all(ops::mul(ops::layernorm(lx, lw, lb), rnd({200, 65}, 10))).backward();
  out.push_back(lx.grad().to_vector()), out.push_back(lw.grad().to_vector()), out.push_back(lb.grad().to_vector());
  Tensor table = rnd({50, 40}, 11).set_requires_grad(true);
  Tensor ids = Tensor::randint({1000}, 12, 0, 50);
  ops::sum_all(ops::mul(ops::embedding(table, ids), rnd({1000, 40}, 13))).backward();
  out.push_back(table.grad().to_vector());
  Tensor q = rnd({2, 64, 48}, 14).set_requires_grad(true), k = rnd({2, 64, 48}, 15).set_requires_grad(true),
         v = rnd({2, 64, 48}, 16).set_requires_grad(true);
  Tensor o = ops::attention(q, k, v, 4, true);
  out.push_back(o.to_vector());
  ops::sum_all(ops::mul(o, rnd({2, 64, 48}, 17))).backward();
  out.push_back(q.grad().to_vector()), out.push_back(k.grad().to_vector()), out.push_back(v.grad().to_vector());
  Tensor logits = rnd({64, 1001}, 18).set_requires_grad(true);
  ops::cross_entropy(logits, Tensor::randint({64}, 19, 0, 1001)).backward();
  out.push_back(logits.grad().to_vector());
  out.push_back(ops::sum(rnd({100000, 3}, 20), {0}).to_vector());
  out.push_back({ops::sum_all(rnd({1000003}, 21)).item()});
  out.push_back(Tensor::randn({100001}, 22).to_vector());
  return out;
}
}  // namespace

TEST(Determinism, OneAndTwoThreadsGiveTheSameBits) {
  set_num_threads(1);
  const auto one = run_all();
  set_num_threads(2);
  const auto two = run_all();
  set_num_threads(0);
  ASSERT_EQ(one.size(), two.size());
  for (size_t i = 0; i < one.size(); ++i) {
    ASSERT_EQ(one[i].size(), two[i].size());
    EXPECT_EQ(std::memcmp(one[i].data(), two[i].data(), one[i].size() * sizeof(float)), 0) << "result " << i;
  }
}
