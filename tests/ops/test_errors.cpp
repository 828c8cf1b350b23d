// Bad inputs raise scion::Error naming the op and the shapes it got; never a crash.
#include "ops/check.h"

using namespace scion;

namespace {
void expect_error(const std::function<void()>& f, const std::vector<std::string>& parts) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one mentioning " << parts[0];
  } catch (const Error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}
}  // namespace

TEST(Errors, ShapesDtypesAndIndices) {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4, 5});
  expect_error([&] { ops::add(a, b); }, {"add", "[2, 3]", "[4, 5]"});
  expect_error([&] { ops::matmul(a, b); }, {"matmul", "[2, 3]", "[4, 5]"});
  expect_error([&] { ops::linear(a, b, Tensor(), true); }, {"linear", "[2, 3]", "[4, 5]"});
  expect_error([&] { ops::layernorm(a, Tensor::ones({4}), Tensor::zeros({4})); }, {"layernorm", "[4]", "[2, 3]"});
  expect_error([&] { ops::cross_entropy(Tensor::zeros({2, 3}, DType::i64), Tensor::zeros({2}, DType::i64)); },
               {"cross_entropy", "i64[2, 3]"});
  expect_error([&] { ops::cross_entropy(a, Tensor::from_vector_i64({0, 7}, {2})); }, {"cross_entropy", "target 7"});
  expect_error([&] { ops::embedding(Tensor::zeros({5, 2}), Tensor::zeros({3})); }, {"embedding", "f32[3]"});
  expect_error([&] { ops::embedding(Tensor::zeros({5, 2}), Tensor::from_vector_i64({1, 9}, {2})); },
               {"embedding", "id 9", "[5, 2]"});
  expect_error([&] { ops::attention(Tensor::zeros({1, 4, 6}), Tensor::zeros({1, 4, 6}), Tensor::zeros({1, 4, 6}), 4, true); },
               {"attention", "[1, 4, 6]", "4 heads"});
  expect_error([&] { ops::sum(a, {2}); }, {"sum", "axis 2"});
  expect_error([&] { ops::index_select(a, 1, Tensor::from_vector_i64({3}, {1})); }, {"index_select", "[2, 3]"});
  expect_error([&] { ops::gather(a, 1, Tensor::zeros({2, 3, 1}, DType::i64)); }, {"gather", "[2, 3]"});
  expect_error([&] { ops::concat({a, b}, 0); }, {"concat", "[4, 5]", "[2, 3]"});
  expect_error([&] { ops::kl_div(a, b, 2.f); }, {"kl_div", "[2, 3]", "[4, 5]"});
  expect_error([&] { ops::kl_div(a, a, 0.f); }, {"kl_div", "temperature"});
  expect_error([&] { ops::masked_fill(a, Tensor::zeros({2, 3}), 1.f); }, {"masked_fill", "f32[2, 3]"});
  expect_error([&] { ops::dropout(a, 1.5f, 1); }, {"dropout", "probability"});
  expect_error([&] { Tensor p = a, m = a, v = a; ops::adamw_step(p, b, m, v, 1, {}); }, {"adamw_step", "[4, 5]"});
  expect_error([&] { ops::gelu(Tensor::zeros({3}, DType::bf16)); }, {"gelu", "bf16[3]"});
}

TEST(Errors, CudaTensorsOnACpuOnlyBuild) {
  if (cuda_available()) GTEST_SKIP() << "a CUDA device is present; this case covers CPU-only builds";
  expect_error([&] { Tensor::zeros({2, 3}).to(Device::cuda(0)); }, {"cuda:0", "f32[2, 3]"});
}
