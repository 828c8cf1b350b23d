// Wrong shapes, dtypes, devices, indices and axes: every op throws scion::Error whose message
// names the op and the shape it got — never a crash and never a silent wrong result.
#include <gtest/gtest.h>

#include "ops/test_util.h"

using namespace scion;
using namespace scion::test;

namespace {
// The error message must contain every one of `parts`.
template <class F>
void expect_error(F&& f, std::initializer_list<std::string> parts, const char* what) {
  const std::string msg = error_of(std::forward<F>(f));
  for (const std::string& p : parts)
    EXPECT_NE(msg.find(p), std::string::npos) << what << ": message \"" << msg << "\" does not mention \"" << p << "\"";
}
#define EXPECT_OP_ERROR(expr, ...) expect_error([&] { (void)(expr); }, {__VA_ARGS__}, #expr)

Tensor f(const Shape& s) { return randn(s, 1); }
Tensor i64(const Shape& s) { return Tensor::zeros(s, DType::i64); }
}  // namespace

TEST(OpErrors, Elementwise) {
  EXPECT_OP_ERROR(ops::add(f({2, 3}), f({4})), "add", "[2, 3]", "[4]");
  EXPECT_OP_ERROR(ops::sub(f({2, 3}), f({3, 2})), "sub", "[2, 3]", "[3, 2]");
  EXPECT_OP_ERROR(ops::mul(f({5, 1, 3}), f({2, 4})), "mul", "[5, 1, 3]", "[2, 4]");
  EXPECT_OP_ERROR(ops::div(f({7}), f({2, 6})), "div", "[7]", "[2, 6]");
  EXPECT_OP_ERROR(ops::add(i64({2, 3}), f({2, 3})), "add", "i64", "[2, 3]");
  EXPECT_OP_ERROR(ops::mul(f({2, 3}), f({2, 3}).to(DType::bf16)), "mul", "bf16", "[2, 3]");
  EXPECT_OP_ERROR(ops::add(Tensor(), f({2})), "add", "undefined");
  for (auto* fn : {&ops::exp, &ops::log, &ops::tanh, &ops::sqrt, &ops::rsqrt, &ops::relu, &ops::gelu, &ops::neg})
    EXPECT_OP_ERROR(fn(i64({4, 5})), "i64", "[4, 5]");
  EXPECT_OP_ERROR(ops::exp(i64({4, 5})), "exp", "[4, 5]");
  EXPECT_OP_ERROR(ops::gelu(f({3}).to(DType::f16)), "gelu", "f16[3]");
  EXPECT_OP_ERROR(ops::add_scalar(i64({2}), 1.f), "add_scalar", "[2]");
  EXPECT_OP_ERROR(ops::mul_scalar(i64({2}), 1.f), "mul_scalar", "[2]");
  EXPECT_OP_ERROR(ops::pow_scalar(i64({2}), 1.f), "pow_scalar", "[2]");
  EXPECT_OP_ERROR(ops::clamp(i64({2, 2}), 0.f, 1.f), "clamp", "[2, 2]");
  EXPECT_OP_ERROR(ops::clamp(f({2}), 1.f, 0.f), "clamp");
  EXPECT_OP_ERROR(ops::dropout(f({3}), 1.f, 0), "dropout");
  EXPECT_OP_ERROR(ops::dropout(f({3}), -0.1f, 0), "dropout");
  EXPECT_OP_ERROR(ops::dropout(i64({3, 4}), 0.5f, 0), "dropout", "[3, 4]");
}

TEST(OpErrors, Reductions) {
  EXPECT_OP_ERROR(ops::sum(f({2, 3}), {2}), "sum", "[2, 3]");
  EXPECT_OP_ERROR(ops::sum(f({2, 3}), {-3}), "sum", "[2, 3]");
  EXPECT_OP_ERROR(ops::sum(f({2, 3}), {1, -1}), "sum", "[2, 3]");
  EXPECT_OP_ERROR(ops::sum(i64({2, 3}), {0}), "sum", "[2, 3]");
  EXPECT_OP_ERROR(ops::mean(f({2, 3}), {5}), "mean", "[2, 3]");
  EXPECT_OP_ERROR(ops::max(f({2, 3}), 2), "max", "[2, 3]");
  EXPECT_OP_ERROR(ops::max(f({2, 0}), 1), "max", "[2, 0]");
  EXPECT_OP_ERROR(ops::max(i64({4}), 0), "max", "[4]");
  EXPECT_OP_ERROR(ops::sum_all(i64({2, 3})), "sum_all", "[2, 3]");
  EXPECT_OP_ERROR(ops::sum_to(f({4, 3}), {5}), "sum_to", "[4, 3]", "[5]");
  EXPECT_OP_ERROR(ops::sum_to(f({3}), {2, 3, 1}), "sum_to", "[3]", "[2, 3, 1]");
}

TEST(OpErrors, MatmulLinear) {
  EXPECT_OP_ERROR(ops::matmul(f({2, 3}), f({4, 5})), "matmul", "[2, 3]", "[4, 5]");
  EXPECT_OP_ERROR(ops::matmul(f({2, 3}), f({2, 5}), false, true), "matmul", "[2, 3]", "[2, 5]");
  EXPECT_OP_ERROR(ops::matmul(f({3}), f({3, 4})), "matmul", "[3]");
  EXPECT_OP_ERROR(ops::matmul(f({2, 3, 4}), f({3, 4, 5})), "matmul", "[2, 3, 4]", "[3, 4, 5]");
  EXPECT_OP_ERROR(ops::matmul(f({2, 2, 3, 4}), f({2, 4, 5})), "matmul", "[2, 2, 3, 4]", "[2, 4, 5]");
  EXPECT_OP_ERROR(ops::matmul(i64({2, 3}), f({3, 4})), "matmul", "i64[2, 3]");
  EXPECT_OP_ERROR(ops::linear(f({5, 7}), f({3, 8}), Tensor(), false), "linear", "[5, 7]", "[3, 8]");
  EXPECT_OP_ERROR(ops::linear(f({5, 7}), f({3, 7}), Tensor(), true), "linear", "[5, 7]", "[3, 7]");
  EXPECT_OP_ERROR(ops::linear(f({5, 7}), f({3, 7}), f({7}), false), "linear", "[7]");
  EXPECT_OP_ERROR(ops::linear(f({5, 7}), f({2, 3, 7}), Tensor(), false), "linear", "[2, 3, 7]");
  EXPECT_OP_ERROR(ops::linear(f({5, 7}), i64({3, 7}), Tensor(), false), "linear", "i64[3, 7]");
  EXPECT_OP_ERROR(ops::linear(f({5, 7}), f({3, 7}), i64({3}), false), "linear", "i64[3]");
}

TEST(OpErrors, SoftmaxLayerNorm) {
  EXPECT_OP_ERROR(ops::softmax(f({2, 3}), 2), "softmax", "[2, 3]");
  EXPECT_OP_ERROR(ops::log_softmax(f({2, 3}), -3), "log_softmax", "[2, 3]");
  EXPECT_OP_ERROR(ops::softmax(i64({2, 3})), "softmax", "[2, 3]");
  EXPECT_OP_ERROR(ops::softmax(Tensor::scalar(1.f)), "softmax", "[]");
  EXPECT_OP_ERROR(ops::layernorm(f({4, 8}), f({7}), f({8})), "layernorm", "[7]", "[4, 8]");
  EXPECT_OP_ERROR(ops::layernorm(f({4, 8}), f({8}), f({8, 1})), "layernorm", "[8, 1]");
  EXPECT_OP_ERROR(ops::layernorm(i64({4, 8}), f({8}), f({8})), "layernorm", "i64[4, 8]");
  EXPECT_OP_ERROR(ops::layernorm(f({4, 8}), f({8}), Tensor()), "layernorm", "undefined");
}

TEST(OpErrors, EmbeddingAndIndexing) {
  Tensor w = f({10, 4});
  EXPECT_OP_ERROR(ops::embedding(w, Tensor::from_vector_i64({1, 10, 2}, {3})), "embedding", "10", "[10, 4]");
  EXPECT_OP_ERROR(ops::embedding(w, Tensor::from_vector_i64({-1}, {1})), "embedding", "-1", "[10, 4]");
  EXPECT_OP_ERROR(ops::embedding(w, f({3})), "embedding", "f32[3]");
  EXPECT_OP_ERROR(ops::embedding(f({10}), i64({3})), "embedding", "[10]");
  EXPECT_OP_ERROR(ops::embedding(i64({10, 4}), i64({3})), "embedding", "i64[10, 4]");

  Tensor a = f({4, 5});
  EXPECT_OP_ERROR(ops::index_select(a, 1, Tensor::from_vector_i64({0, 5}, {2})), "index_select", "5", "[4, 5]");
  EXPECT_OP_ERROR(ops::index_select(a, 0, Tensor::from_vector_i64({-1}, {1})), "index_select", "[4, 5]");
  EXPECT_OP_ERROR(ops::index_select(a, 0, i64({2, 2})), "index_select", "[2, 2]");
  EXPECT_OP_ERROR(ops::index_select(a, 0, f({2})), "index_select", "f32[2]");
  EXPECT_OP_ERROR(ops::index_select(a, 2, i64({2})), "index_select", "[4, 5]");

  EXPECT_OP_ERROR(ops::gather(a, 1, Tensor::from_vector_i64({0, 7}, {2, 1})), "gather", "7", "[4, 5]");
  EXPECT_OP_ERROR(ops::gather(a, 1, i64({4})), "gather", "[4]", "[4, 5]");
  EXPECT_OP_ERROR(ops::gather(a, 1, i64({6, 1})), "gather", "[6, 1]", "[4, 5]");
  EXPECT_OP_ERROR(ops::gather(a, 1, f({4, 1})), "gather", "f32[4, 1]");
  EXPECT_OP_ERROR(ops::gather(a, -3, i64({4, 1})), "gather", "[4, 5]");

  EXPECT_OP_ERROR(ops::concat({f({2, 3}), f({3, 3})}, 1), "concat", "[2, 3]", "[3, 3]");
  EXPECT_OP_ERROR(ops::concat({f({2, 3}), f({2, 3, 1})}, 0), "concat", "[2, 3, 1]");
  EXPECT_OP_ERROR(ops::concat({f({2, 3}), i64({2, 3})}, 0), "concat", "i64[2, 3]");
  EXPECT_OP_ERROR(ops::concat({}, 0), "concat");
  EXPECT_OP_ERROR(ops::concat({f({2, 3}), f({2, 3})}, 2), "concat", "[2, 3]");
  EXPECT_OP_ERROR(ops::split(f({2, 6}), {2, 3}, 1), "split", "[2, 6]");
  EXPECT_OP_ERROR(ops::split(f({2, 6}), {6}, 2), "split", "[2, 6]");
  EXPECT_OP_ERROR(ops::split(f({2, 6}), {-1, 7}, 1), "split", "[2, 6]");

  EXPECT_OP_ERROR(ops::masked_fill(f({3, 4}), Tensor::ones({3, 5}, DType::u8), 0.f), "masked_fill", "[3, 4]", "[3, 5]");
  EXPECT_OP_ERROR(ops::masked_fill(f({1, 4}), Tensor::ones({3, 4}, DType::u8), 0.f), "masked_fill", "[1, 4]", "[3, 4]");
  EXPECT_OP_ERROR(ops::masked_fill(f({3, 4}), Tensor::ones({3, 4}), 0.f), "masked_fill", "f32[3, 4]");
  EXPECT_OP_ERROR(ops::where(Tensor::ones({3, 4}), f({3, 4}), f({3, 4})), "where", "f32[3, 4]");
  EXPECT_OP_ERROR(ops::where(Tensor::ones({3, 4}, DType::u8), f({3, 5}), f({3, 4})), "where", "[3, 5]");
  EXPECT_OP_ERROR(ops::where(Tensor::ones({3, 4}, DType::u8), f({3, 4}), i64({3, 4})), "where", "i64[3, 4]");
}

TEST(OpErrors, Attention) {
  Tensor q = f({2, 5, 12});
  EXPECT_OP_ERROR(ops::attention(q, q, q, 5, true), "attention", "[2, 5, 12]", "5 heads");
  EXPECT_OP_ERROR(ops::attention(q, q, q, 0, true), "attention", "[2, 5, 12]");
  EXPECT_OP_ERROR(ops::attention(q, f({2, 4, 12}), q, 2, true), "attention", "[2, 4, 12]");
  EXPECT_OP_ERROR(ops::attention(f({5, 12}), f({5, 12}), f({5, 12}), 2, true), "attention", "[5, 12]");
  EXPECT_OP_ERROR(ops::attention(q, q, q, 2, false, Tensor::ones({2, 4}, DType::u8)), "attention", "[2, 4]");
  EXPECT_OP_ERROR(ops::attention(q, q, q, 2, false, Tensor::ones({2, 5})), "attention", "f32[2, 5]");
  EXPECT_OP_ERROR(ops::attention(i64({2, 5, 12}), q, q, 2, false), "attention", "i64[2, 5, 12]");
}

TEST(OpErrors, Losses) {
  Tensor logits = f({4, 6});
  EXPECT_OP_ERROR(ops::cross_entropy(i64({4, 6}), i64({4})), "cross_entropy", "i64[4, 6]");
  EXPECT_OP_ERROR(ops::cross_entropy(logits, f({4})), "cross_entropy", "f32[4]");
  EXPECT_OP_ERROR(ops::cross_entropy(logits, i64({5})), "cross_entropy", "[5]", "[4, 6]");
  EXPECT_OP_ERROR(ops::cross_entropy(logits, i64({2, 2})), "cross_entropy", "[2, 2]", "[4, 6]");
  EXPECT_OP_ERROR(ops::cross_entropy(logits, Tensor::from_vector_i64({0, 6, 1, 2}, {4})), "cross_entropy", "6",
                  "[4, 6]");
  EXPECT_OP_ERROR(ops::cross_entropy(logits, Tensor::from_vector_i64({0, -1, 1, 2}, {4})), "cross_entropy", "-1",
                  "[4, 6]");
  EXPECT_OP_ERROR(ops::cross_entropy(f({4, 0}), i64({4})), "cross_entropy", "[4, 0]");
  EXPECT_OP_ERROR(ops::soft_cross_entropy(logits, f({4, 5}), 1.f), "soft_cross_entropy", "[4, 6]", "[4, 5]");
  EXPECT_OP_ERROR(ops::kl_div(logits, f({4, 5}), 2.f), "kl_div", "[4, 6]", "[4, 5]");
  EXPECT_OP_ERROR(ops::kl_div(logits, i64({4, 6}), 2.f), "kl_div", "i64[4, 6]");
  EXPECT_OP_ERROR(ops::kl_div(logits, logits, 0.f), "kl_div");
  EXPECT_OP_ERROR(ops::soft_cross_entropy(logits, logits, 1.f, Tensor::ones({3}, DType::u8)), "soft_cross_entropy",
                  "[3]");
  EXPECT_OP_ERROR(ops::kl_div(logits, logits, 1.f, Tensor::ones({4})), "kl_div", "f32[4]");
  EXPECT_OP_ERROR(ops::mse(f({3, 2}), f({2, 3})), "mse", "[3, 2]", "[2, 3]");
  EXPECT_OP_ERROR(ops::mse(f({3}), f({1})), "mse", "[3]", "[1]");
}

TEST(OpErrors, Optimizer) {
  Tensor p = f({3, 4}), g = f({3, 4}), m = Tensor::zeros({3, 4}), v = Tensor::zeros({3, 4});
  Tensor bad = Tensor::zeros({4, 3});
  EXPECT_OP_ERROR(ops::adamw_step(p, bad, m, v, 1, {}), "adamw_step", "[4, 3]", "[3, 4]");
  EXPECT_OP_ERROR(ops::adamw_step(p, g, bad, v, 1, {}), "adamw_step", "[4, 3]");
  EXPECT_OP_ERROR(ops::adamw_step(p, g, m, v, 0, {}), "adamw_step");
  Tensor pt = f({4, 3}).transpose(0, 1);
  EXPECT_OP_ERROR(ops::adamw_step(pt, g, m, v, 1, {}), "adamw_step", "[3, 4]");
  Tensor pi = i64({3, 4});
  EXPECT_OP_ERROR(ops::adamw_step(pi, g, m, v, 1, {}), "adamw_step", "i64[3, 4]");
  EXPECT_OP_ERROR(ops::global_norm({f({2}), i64({3, 3})}), "global_norm", "i64[3, 3]");
  EXPECT_OP_ERROR(ops::clip_grad_norm({f({2})}, 0.f), "clip_grad_norm");
  // nothing was modified by the failed calls
  Tensor p0 = p.clone();
  error_of([&] { ops::adamw_step(p, bad, m, v, 1, {}); });
  EXPECT_TRUE(same_bits(p, p0));
}

TEST(OpErrors, Views) {
  Tensor a = f({2, 3});
  EXPECT_OP_ERROR(a.view({4}), "view", "[2, 3]", "[4]");
  EXPECT_OP_ERROR(a.reshape({-1, 4}), "view", "[2, 3]");
  EXPECT_OP_ERROR(a.transpose(0, 1).view({6}), "view", "[3, 2]");
  EXPECT_OP_ERROR(a.narrow(1, 2, 2), "narrow", "[2, 3]");
  EXPECT_OP_ERROR(a.narrow(0, -1, 1), "narrow", "[2, 3]");
  EXPECT_OP_ERROR(a.squeeze(1), "squeeze", "[2, 3]");
  EXPECT_OP_ERROR(a.unsqueeze(4), "unsqueeze", "[2, 3]");
  EXPECT_OP_ERROR(a.permute({0}), "permute", "[2, 3]");
  EXPECT_OP_ERROR(a.permute({0, 0}), "permute");
  EXPECT_OP_ERROR(a.transpose(0, 2), "transpose", "[2, 3]");
  EXPECT_OP_ERROR(a.copy_(f({3, 2})), "copy_", "[3, 2]", "[2, 3]");
  EXPECT_OP_ERROR(Tensor::from_vector({1, 2, 3}, {2, 2}), "from_vector", "[2, 2]");
  EXPECT_OP_ERROR(Tensor::empty({2, -1}), "[2, -1]");
  EXPECT_OP_ERROR(a.item(), "item", "[2, 3]");
  EXPECT_OP_ERROR(i64({2}).set_requires_grad(true), "set_requires_grad", "i64[2]");
}

TEST(OpErrors, Backward) {
  Tensor x = f({2, 3});
  x.set_requires_grad(true);
  Tensor y = ops::mul_scalar(x, 2.f);
  EXPECT_OP_ERROR(y.backward(), "backward", "[2, 3]");
  EXPECT_OP_ERROR(y.backward(Tensor::ones({3, 2})), "backward", "[3, 2]", "[2, 3]");
  EXPECT_OP_ERROR(f({2}).backward(Tensor::ones({2})), "backward", "[2]");
  Tensor l = ops::sum_all(y);
  l.backward();
  EXPECT_OP_ERROR(l.backward(), "backward");  // graph already freed
}

// Inputs on two devices: every op picks its kernels in one place (core/ops/backend.h) and
// refuses a mix there, naming the op and both devices. Where no CUDA device exists, asking for
// one is itself an Error (and the mixes cannot be built).
TEST(OpErrors, InputsOnTwoDevices) {
  if (!cuda_available()) {
    EXPECT_OP_ERROR(Tensor::zeros({2, 3}, DType::f32, Device::cuda()), "cuda:0");
    EXPECT_OP_ERROR(f({2, 3}).to(Device::cuda()), "cuda");
    GTEST_SKIP() << "no CUDA device: the two-device checks need one";
  }
  const Device gpu = Device::cuda();
  Tensor a = f({2, 3}).to(gpu), b = f({2, 3}).to(gpu);
  EXPECT_EQ(a.device(), gpu);
  EXPECT_OP_ERROR(ops::add(a, f({2, 3})), "add", "two devices", "cuda:0", "cpu");
  EXPECT_OP_ERROR(ops::add(f({2, 3}), a), "add", "two devices", "cuda:0", "cpu");
  EXPECT_OP_ERROR(ops::matmul(a, f({3, 4})), "matmul", "two devices", "cuda:0", "cpu");
  EXPECT_OP_ERROR(ops::linear(a, f({4, 3}), Tensor(), false), "linear", "two devices", "cuda:0", "cpu");
  EXPECT_OP_ERROR(ops::layernorm(a, f({3}), f({3})), "layernorm", "two devices", "cuda:0", "cpu");
  EXPECT_OP_ERROR(ops::embedding(a, i64({2})), "embedding", "two devices", "cuda:0", "cpu");
  EXPECT_OP_ERROR(ops::cross_entropy(a, i64({2})), "cross_entropy", "two devices", "cuda:0", "cpu");
  EXPECT_OP_ERROR(ops::kl_div(a, f({2, 3}), 1.f), "kl_div", "two devices", "cuda:0", "cpu");
  EXPECT_OP_ERROR(ops::concat({a, f({2, 3})}, 0), "concat", "two devices", "cuda:0", "cpu");
  EXPECT_OP_ERROR(ops::where(Tensor::ones({2, 3}, DType::u8), a, b), "where", "two devices", "cuda:0", "cpu");
  EXPECT_OP_ERROR(ops::linear_cross_entropy(a, f({5, 3}), Tensor(), i64({2})), "linear_cross_entropy",
                  "two devices", "cuda:0", "cpu");
  Tensor m = Tensor::zeros({2, 3}), v = Tensor::zeros({2, 3});
  EXPECT_OP_ERROR(ops::adamw_step(a, b, m, v, 1, {}), "adamw_step", "two devices", "cuda:0", "cpu");
  EXPECT_OP_ERROR(ops::global_norm({a, f({2, 3})}), "global_norm", "two devices", "cuda:0", "cpu");
  // the same ops on one device run, and the values survive the round trip
  EXPECT_NO_THROW(ops::add(a, b));
  EXPECT_EQ(a.to(Device::cpu()).to_vector(), f({2, 3}).to_vector());
}
