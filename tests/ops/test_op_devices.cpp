// One op table over every device and dtype: each row is one op (or one mode of an op); it runs
// on cpu and cuda, in f32 and (for ops with a bf16 path: the GEMMs under precision = "bf16") in
// bf16, and its values AND gradients are compared against the same row run on the CPU in f32.
// Adding an op = adding one row to rows().
//
// Tolerances (relative to the reference's largest magnitude, per tensor):
//   f32:  cpu 0 (the reference itself: must be bit-identical run to run), cuda 2e-5 (different
//         summation trees, FMA, cuBLASLt);
//   bf16: 2e-2 on either device (both GEMM operands rounded to 8 significant bits, f32 sums).
// CUDA rows skip, saying why, where the build has no CUDA backend or the machine no CUDA device.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <ostream>
#include <string>
#include <vector>

#include "scion/device.h"
#include "scion/nn.h"
#include "scion/ops.h"
#include "scion/precision.h"
#include "scion/tensor.h"

namespace scion {
namespace {

struct In {
  Tensor value;       // made on the CPU
  bool grad = false;  // a leaf that requires grad
};

struct Row {
  std::string name;
  bool bf16;  // has a bf16 path (GEMM precision)
  std::function<std::vector<In>()> inputs;
  // The op on inputs already on the device; returns its outputs (floating ones get a gradient).
  std::function<std::vector<Tensor>(std::vector<Tensor>&)> run;
};

Tensor rn(const Shape& s, uint64_t seed, float std = 1.f) { return Tensor::randn(s, seed, 0.f, std); }
Tensor un(const Shape& s, uint64_t seed, float lo, float hi) { return Tensor::rand(s, seed, lo, hi); }
Tensor ids(const Shape& s, uint64_t seed, int64_t hi) { return Tensor::randint(s, seed, 0, hi); }
Tensor u8(const Shape& s, uint64_t seed) {
  return Tensor::randint(s, seed, 0, 2, DType::i64).to(DType::u8);
}
Tensor f(const Shape& s, uint64_t seed, float std = 1.f) { return rn(s, seed, std); }
In g(Tensor t) { return {std::move(t), true}; }
In c(Tensor t) { return {std::move(t), false}; }

using V = std::vector<Tensor>;

std::vector<Row> rows() {
  std::vector<Row> r;
  auto unary = [&](const std::string& name, std::function<Tensor(const Tensor&)> fn, float lo, float hi) {
    r.push_back({name, false, [=] { return std::vector<In>{g(un({3, 17}, 11, lo, hi))}; },
                 [fn](V& x) { return V{fn(x[0])}; }});
  };
  // ---- elementwise ----
  r.push_back({"add_broadcast", false, [] { return std::vector<In>{g(f({2, 3, 5}, 1)), g(f({3, 1}, 2))}; },
               [](V& x) { return V{ops::add(x[0], x[1])}; }});
  r.push_back({"sub_broadcast", false, [] { return std::vector<In>{g(f({4, 1}, 3)), g(f({1, 6}, 4))}; },
               [](V& x) { return V{ops::sub(x[0], x[1])}; }});
  r.push_back({"mul_strided", false, [] { return std::vector<In>{g(f({5, 4}, 5)), g(f({4, 5}, 6))}; },
               [](V& x) { return V{ops::mul(x[0], x[1].transpose(0, 1))}; }});
  r.push_back({"div", false, [] { return std::vector<In>{g(f({3, 7}, 7)), g(un({3, 7}, 8, 0.5f, 2.f))}; },
               [](V& x) { return V{ops::div(x[0], x[1])}; }});
  unary("add_scalar", [](const Tensor& t) { return ops::add_scalar(t, 1.5f); }, -2, 2);
  unary("mul_scalar", [](const Tensor& t) { return ops::mul_scalar(t, -0.75f); }, -2, 2);
  unary("pow_scalar", [](const Tensor& t) { return ops::pow_scalar(t, 1.7f); }, 0.2f, 2);
  unary("neg", [](const Tensor& t) { return ops::neg(t); }, -2, 2);
  unary("exp", [](const Tensor& t) { return ops::exp(t); }, -2, 2);
  unary("log", [](const Tensor& t) { return ops::log(t); }, 0.1f, 3);
  unary("tanh", [](const Tensor& t) { return ops::tanh(t); }, -3, 3);
  unary("sqrt", [](const Tensor& t) { return ops::sqrt(t); }, 0.1f, 3);
  unary("rsqrt", [](const Tensor& t) { return ops::rsqrt(t); }, 0.1f, 3);
  unary("relu", [](const Tensor& t) { return ops::relu(t); }, -2, 2);
  unary("gelu", [](const Tensor& t) { return ops::gelu(t); }, -4, 4);
  unary("silu", [](const Tensor& t) { return ops::silu(t); }, -6, 6);
  r.push_back({"swiglu", false, [] { return std::vector<In>{g(f({4, 12}, 87, 2.f)), g(f({4, 12}, 88))}; },
               [](V& x) { return V{ops::swiglu(x[0], x[1])}; }});
  unary("clamp", [](const Tensor& t) { return ops::clamp(t, -0.5f, 0.7f); }, -2, 2);
  unary("dropout", [](const Tensor& t) { return ops::dropout(t, 0.3f, 77); }, -2, 2);
  // ---- reductions ----
  r.push_back({"sum_axes", false, [] { return std::vector<In>{g(f({3, 4, 5}, 9))}; },
               [](V& x) { return V{ops::sum(x[0], {0, 2}, false)}; }});
  r.push_back({"mean_keepdim", false, [] { return std::vector<In>{g(f({3, 4, 5}, 10))}; },
               [](V& x) { return V{ops::mean(x[0], {1}, true)}; }});
  r.push_back({"sum_all", false, [] { return std::vector<In>{g(f({33, 65}, 11))}; },
               [](V& x) { return V{ops::sum_all(x[0])}; }});
  r.push_back({"mean_all", false, [] { return std::vector<In>{g(f({7, 9}, 12))}; },
               [](V& x) { return V{ops::mean_all(x[0])}; }});
  r.push_back({"max", false, [] { return std::vector<In>{g(f({4, 6, 3}, 13))}; },
               [](V& x) { return V{ops::max(x[0], 1, false)}; }});
  r.push_back({"sum_to", false, [] { return std::vector<In>{g(f({2, 3, 4}, 14))}; },
               [](V& x) { return V{ops::sum_to(x[0], {3, 1})}; }});
  // ---- GEMMs (bf16 path) ----
  r.push_back({"matmul_2d", true, [] { return std::vector<In>{g(f({5, 7}, 15)), g(f({7, 6}, 16))}; },
               [](V& x) { return V{ops::matmul(x[0], x[1])}; }});
  r.push_back({"matmul_transposed", true, [] { return std::vector<In>{g(f({7, 5}, 17)), g(f({6, 7}, 18))}; },
               [](V& x) { return V{ops::matmul(x[0], x[1], true, true)}; }});
  r.push_back({"matmul_batched", true, [] { return std::vector<In>{g(f({3, 4, 5}, 19)), g(f({3, 5, 2}, 20))}; },
               [](V& x) { return V{ops::matmul(x[0], x[1])}; }});
  r.push_back({"matmul_shared_rhs", true, [] { return std::vector<In>{g(f({2, 4, 5}, 21)), g(f({5, 3}, 22))}; },
               [](V& x) { return V{ops::matmul(x[0], x[1])}; }});
  r.push_back({"linear_out_in_bias", true,
               [] { return std::vector<In>{g(f({2, 3, 8}, 23)), g(f({5, 8}, 24)), g(f({5}, 25))}; },
               [](V& x) { return V{ops::linear(x[0], x[1], x[2], false)}; }});
  r.push_back({"linear_in_out", true, [] { return std::vector<In>{g(f({6, 8}, 26)), g(f({8, 4}, 27))}; },
               [](V& x) { return V{ops::linear(x[0], x[1], Tensor(), true)}; }});
  // ---- softmax, normalisation ----
  r.push_back({"softmax", false, [] { return std::vector<In>{g(f({4, 19}, 28))}; },
               [](V& x) { return V{ops::softmax(x[0])}; }});
  r.push_back({"log_softmax_axis0", false, [] { return std::vector<In>{g(f({6, 5}, 29))}; },
               [](V& x) { return V{ops::log_softmax(x[0], 0)}; }});
  r.push_back({"layernorm", false,
               [] { return std::vector<In>{g(f({3, 4, 16}, 30)), g(un({16}, 31, 0.5f, 1.5f)), g(f({16}, 32))}; },
               [](V& x) { return V{ops::layernorm(x[0], x[1], x[2])}; }});
  r.push_back({"layernorm_masked", false,
               [] {
                 return std::vector<In>{g(f({4, 12}, 33)), g(un({12}, 34, 0.5f, 1.5f)), g(f({12}, 35)),
                                        c(un({12}, 36, 0.2f, 1.f))};
               },
               [](V& x) { return V{ops::layernorm_masked(x[0], x[1], x[2], x[3])}; }});
  r.push_back({"layernorm_kept", false,
               [] {
                 return std::vector<In>{g(f({4, 12}, 37)), g(un({12}, 38, 0.5f, 1.5f)), g(f({12}, 39)),
                                        g(un({12}, 40, 0.2f, 1.f))};
               },
               [](V& x) { return V{ops::layernorm_kept(x[0], x[1], x[2], x[3])}; }});
  r.push_back({"rms_norm", false, [] { return std::vector<In>{g(f({3, 4, 16}, 85)), g(un({16}, 86, 0.5f, 1.5f))}; },
               [](V& x) { return V{ops::rms_norm(x[0], x[1])}; }});
  // ---- embedding and indexing ----
  r.push_back({"embedding", false, [] { return std::vector<In>{g(f({11, 6}, 41)), c(ids({3, 7}, 42, 11))}; },
               [](V& x) { return V{ops::embedding(x[0], x[1])}; }});
  r.push_back({"index_select", false,
               [] { return std::vector<In>{g(f({4, 9, 3}, 43)), c(ids({12}, 44, 9))}; },
               [](V& x) { return V{ops::index_select(x[0], 1, x[1])}; }});
  r.push_back({"gather", false, [] { return std::vector<In>{g(f({4, 6, 3}, 45)), c(ids({4, 8, 2}, 46, 6))}; },
               [](V& x) { return V{ops::gather(x[0], 1, x[1])}; }});
  r.push_back({"concat_split", false, [] { return std::vector<In>{g(f({2, 3, 4}, 47)), g(f({2, 5, 4}, 48))}; },
               [](V& x) {
                 Tensor y = ops::concat({x[0], x[1]}, 1);
                 auto parts = ops::split(y, {6, 2}, 1);
                 return V{ops::mul(parts[0], parts[0]), parts[1]};
               }});
  r.push_back({"masked_fill", false, [] { return std::vector<In>{g(f({3, 8}, 49)), c(u8({1, 8}, 50))}; },
               [](V& x) { return V{ops::masked_fill(x[0], x[1], -2.5f)}; }});
  r.push_back({"where", false,
               [] { return std::vector<In>{c(u8({3, 5}, 51)), g(f({3, 5}, 52)), g(f({1, 5}, 53))}; },
               [](V& x) { return V{ops::where(x[0], x[1], x[2])}; }});
  r.push_back({"narrow_views", false, [] { return std::vector<In>{g(f({2, 5, 12}, 54))}; },
               [](V& x) {
                 Tensor a = x[0].narrow(2, 0, 4), b = x[0].narrow(2, 8, 4);
                 return V{ops::mul(a, b), x[0].transpose(1, 2).contiguous()};
               }});
  r.push_back({"to_bf16_and_back", false, [] { return std::vector<In>{g(f({4, 9}, 55))}; },
               [](V& x) { return V{x[0].to(DType::bf16).to(DType::f32)}; }});
  // ---- attention ----
  r.push_back({"attention_causal", false,
               [] { return std::vector<In>{g(f({2, 9, 16}, 56)), g(f({2, 9, 16}, 57)), g(f({2, 9, 16}, 58))}; },
               [](V& x) { return V{ops::attention(x[0], x[1], x[2], 2, true)}; }});
  r.push_back({"attention_key_mask", false,
               [] {
                 return std::vector<In>{g(f({2, 7, 12}, 59)), g(f({2, 7, 12}, 60)), g(f({2, 7, 12}, 61)),
                                        c(u8({2, 7}, 62))};
               },
               [](V& x) { return V{ops::attention(x[0], x[1], x[2], 3, false, x[3])}; }});
  r.push_back({"attention_packed_key_mask", false,
               [] { return std::vector<In>{g(f({2, 7, 36}, 82)), c(u8({2, 7}, 83))}; },
               [](V& x) { return V{ops::attention_packed(x[0], 3, true, x[1])}; }});
  r.push_back({"attention_packed_strided", false, [] { return std::vector<In>{g(f({2, 6, 48}, 84))}; },
               [](V& x) { return V{ops::attention_packed(x[0].narrow(2, 0, 24), 2, false)}; }});
  r.push_back({"rotary_llama3", false,
               [] {
                 const ops::RopeTables t = ops::rope_tables(8, 500000.0, 5, 3, ops::Llama3RopeScaling{});
                 return std::vector<In>{g(f({2, 5, 3, 8}, 89)), c(t.cos), c(t.sin)};
               },
               [](V& x) { return V{ops::rotary(x[0], x[1], x[2])}; }});
  r.push_back({"attention_grouped_key_mask", false,
               [] {
                 return std::vector<In>{g(f({2, 7, 16}, 90)), g(f({2, 7, 8}, 91)), g(f({2, 7, 8}, 92)),
                                        c(u8({2, 7}, 93))};
               },
               [](V& x) { return V{ops::attention_grouped(x[0], x[1], x[2], 4, 2, true, x[3])}; }});
  r.push_back({"repeat_kv", false, [] { return std::vector<In>{g(f({2, 3, 6}, 94))}; },
               [](V& x) { return V{ops::repeat_kv(x[0], 3, 2)}; }});
  r.push_back({"attention_grouped_ragged", false,
               [] {
                 return std::vector<In>{g(f({2, 7, 12}, 95)), g(f({2, 7, 8}, 96)), g(f({2, 7, 8}, 97)),
                                        c(u8({2, 7}, 98))};
               },
               [](V& x) { return V{ops::attention_grouped(x[0], x[1], x[2], std::vector<int64_t>{0, 1, 1}, true, x[3])}; }});
  r.push_back({"repeat_kv_ragged", false, [] { return std::vector<In>{g(f({2, 3, 6}, 99))}; },
               [](V& x) { return V{ops::repeat_kv(x[0], 3, std::vector<int64_t>{0, 0, 0, 1, 2})}; }});
  // ---- losses ----
  r.push_back({"cross_entropy_ignore", false,
               [] {
                 Tensor t = ids({10}, 63, 13);
                 t.data<int64_t>()[3] = -100;
                 return std::vector<In>{g(f({10, 13}, 64)), c(t)};
               },
               [](V& x) { return V{ops::cross_entropy(x[0], x[1])}; }});
  r.push_back({"soft_cross_entropy", false,
               [] { return std::vector<In>{g(f({6, 11}, 65)), g(f({6, 11}, 66)), c(u8({6}, 67))}; },
               [](V& x) { return V{ops::soft_cross_entropy(x[0], x[1], 2.f, x[2])}; }});
  r.push_back({"kl_div", false, [] { return std::vector<In>{g(f({6, 11}, 68)), g(f({6, 11}, 69))}; },
               [](V& x) { return V{ops::kl_div(x[0], x[1], 1.5f)}; }});
  r.push_back({"mse", false, [] { return std::vector<In>{g(f({5, 6}, 70)), g(f({5, 6}, 71))}; },
               [](V& x) { return V{ops::mse(x[0], x[1])}; }});
  r.push_back({"linear_cross_entropy", true,
               [] {
                 Tensor t = ids({2, 9}, 72, 37);
                 t.data<int64_t>()[5] = -100;
                 return std::vector<In>{g(f({2, 9, 8}, 73)), g(f({37, 8}, 74, 0.3f)), g(f({37}, 75)), c(t)};
               },
               [](V& x) { return V{ops::linear_cross_entropy(x[0], x[1], x[2], x[3], -100, 4)}; }});
  // ---- optimizer (in place; outputs compared, no gradient) ----
  r.push_back({"adamw_step", false,
               [] {
                 return std::vector<In>{c(f({5, 7}, 76)), c(f({5, 7}, 77)), c(f({5, 7}, 78, 0.1f)),
                                        c(un({5, 7}, 79, 0.f, 0.01f))};
               },
               [](V& x) {
                 ops::AdamWConfig oc;
                 oc.lr = 1e-2f;
                 oc.weight_decay = 0.1f;
                 for (int64_t s = 1; s <= 3; ++s) ops::adamw_step(x[0], x[1], x[2], x[3], s, oc);
                 return V{x[0], x[2], x[3]};
               }});
  r.push_back({"clip_grad_norm", false, [] { return std::vector<In>{c(f({9, 5}, 80)), c(f({17}, 81))}; },
               [](V& x) {
                 const float n = ops::clip_grad_norm({x[0], x[1]}, 1.f);
                 return V{x[0], x[1], Tensor::scalar(n, x[0].device())};
               }});
  return r;
}

struct RowResult {
  std::vector<std::vector<float>> values, grads;
};

// Runs one row on a device at a precision; everything comes back to the host as f32 vectors.
RowResult run_row(const Row& row, Device dev, bool bf16) {
  const MatmulPrecision before = matmul_precision();
  set_matmul_precision(bf16 ? MatmulPrecision::bf16 : MatmulPrecision::f32);
  struct Restore {
    MatmulPrecision p;
    ~Restore() { set_matmul_precision(p); }
  } restore{before};
  std::vector<In> ins = row.inputs();
  V x;
  for (In& in : ins) {
    Tensor t = in.value.to(dev).detach();
    if (dev.is_cpu()) t = t.clone();  // the in-place rows must not write the row's own inputs
    if (in.grad) t.set_requires_grad(true);
    x.push_back(t);
  }
  V outs = row.run(x);
  RowResult r;
  Tensor loss;
  uint64_t seed = 900;
  for (const Tensor& o : outs) {
    EXPECT_EQ(o.device(), dev) << row.name << ": an output is on " << o.device().str();
    r.values.push_back(o.to(Device::cpu()).to_vector());
    if (!o.requires_grad()) continue;
    // A fixed random probe makes every output element's gradient matter.
    Tensor probe = Tensor::randn(o.shape(), seed++).to(dev);
    Tensor term = ops::sum_all(ops::mul(o, probe));
    loss = loss.defined() ? ops::add(loss, term) : term;
  }
  if (loss.defined()) loss.backward();
  for (size_t i = 0; i < ins.size(); ++i) {
    if (!ins[i].grad) continue;
    Tensor gr = x[i].grad();
    r.grads.push_back(gr.defined() ? gr.to(Device::cpu()).to_vector() : std::vector<float>());
  }
  return r;
}

void expect_close(const std::string& what, const std::vector<float>& ref, const std::vector<float>& got, double tol) {
  ASSERT_EQ(ref.size(), got.size()) << what;
  double scale = 0;
  for (float v : ref) scale = std::max(scale, std::fabs(double(v)));
  scale = std::max(scale, 1e-6);
  double worst = 0;
  size_t at = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = std::fabs(double(ref[i]) - double(got[i]));
    if (!(d <= worst)) {  // also catches NaN
      worst = std::isnan(d) ? INFINITY : d;
      at = i;
    }
  }
  EXPECT_LE(worst / scale, tol) << what << ": worst element " << at << " ref " << ref[at] << " got " << got[at]
                                << " (relative to max |ref| " << scale << ")";
}

int cuda_devices() { return cuda_device_count(); }

struct Param {
  size_t row;
  std::string device;  // "cpu" | "cuda"
  bool bf16;
};

// gtest prints the parameter in a failure (and in ctest's listing): the row, device and dtype.
void PrintTo(const Param& p, std::ostream* os) {
  *os << "row " << p.row << " on " << p.device << (p.bf16 ? " bf16" : " f32");
}

class OpDevices : public ::testing::TestWithParam<Param> {};

TEST_P(OpDevices, ValuesAndGradientsMatchTheCpuF32) {
  static const std::vector<Row> table = rows();
  const Param p = GetParam();
  const Row& row = table[p.row];
  if (p.bf16 && !row.bf16) GTEST_SKIP() << row.name << " has no bf16 path (it computes in f32 at any precision)";
  Device dev = Device::cpu();
  if (p.device == "cuda") {
#ifndef SCION_HAVE_CUDA
    GTEST_SKIP() << "this build has no CUDA backend (configured with SCION_CUDA=OFF or without nvcc)";
#endif
    if (cuda_devices() == 0)
      GTEST_SKIP() << "no CUDA device on this machine (the CUDA runtime reports 0 devices): " << row.name
                   << " on cuda not run";
    dev = Device::cuda(0);
  }
  const RowResult ref = run_row(row, Device::cpu(), false);
  const RowResult got = run_row(row, dev, p.bf16);
  const double tol = p.bf16 ? 2e-2 : (dev.is_cpu() ? 0.0 : 2e-5);
  ASSERT_EQ(ref.values.size(), got.values.size());
  ASSERT_EQ(ref.grads.size(), got.grads.size());
  for (size_t i = 0; i < ref.values.size(); ++i)
    expect_close(row.name + " output " + std::to_string(i), ref.values[i], got.values[i], tol);
  for (size_t i = 0; i < ref.grads.size(); ++i)
    expect_close(row.name + " gradient " + std::to_string(i), ref.grads[i], got.grads[i], tol);
}

std::vector<Param> params() {
  // bf16 cases only for the rows with a bf16 path (no case that is always skipped).
  std::vector<Param> ps;
  const std::vector<Row> table = rows();
  for (size_t i = 0; i < table.size(); ++i)
    for (const char* d : {"cpu", "cuda"})
      for (bool b : {false, true})
        if (!b || table[i].bf16) ps.push_back({i, d, b});
  return ps;
}

INSTANTIATE_TEST_SUITE_P(AllOps, OpDevices, ::testing::ValuesIn(params()), [](const auto& info) {
  static const std::vector<Row> table = rows();
  return table[info.param.row].name + "_" + info.param.device + (info.param.bf16 ? "_bf16" : "_f32");
});

// Every op of core/ops appears in the table (a new op without a row fails here).
TEST(OpDevices, TableCoversEveryOp) {
  std::string names;
  for (const Row& r : rows()) names += r.name + " ";
  for (const char* op : {"add", "sub", "mul", "div", "add_scalar", "mul_scalar", "pow_scalar", "neg", "exp", "log",
                         "tanh", "sqrt", "rsqrt", "relu", "gelu", "silu", "swiglu", "clamp", "dropout", "sum_axes", "mean", "sum_all",
                         "mean_all", "max", "sum_to", "matmul", "linear", "softmax", "log_softmax", "layernorm",
                         "layernorm_masked", "layernorm_kept", "rms_norm", "embedding", "index_select", "gather", "concat",
                         "masked_fill", "where", "attention", "attention_packed", "attention_grouped", "repeat_kv", "rotary", "cross_entropy", "soft_cross_entropy", "kl_div", "mse",
                         "linear_cross_entropy", "adamw_step", "clip_grad_norm"})
    EXPECT_NE(names.find(op), std::string::npos) << "no row for " << op;
}

// nn::Module::to: a no-op to the device the parameters are on; to a CUDA device, the
// parameters move (keeping requires_grad), or, without one, the error names the device.
TEST(OpDevices, ModuleToMovesParametersOrSaysWhy) {
  nn::Linear lin(4, 3, true, false, nn::InitConfig{7, 0.02f});
  const std::vector<float> w = lin.weight.to_vector();
  lin.to(Device::cpu());
  EXPECT_EQ(lin.weight.to_vector(), w);
  EXPECT_TRUE(lin.weight.requires_grad());
  if (cuda_devices() == 0) {
    try {
      lin.to(Device::cuda(0));
      ADD_FAILURE() << "moving to cuda:0 without a CUDA device did not throw";
    } catch (const std::exception& e) {
      EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
    }
    GTEST_SKIP() << "no CUDA device on this machine: the move itself not run";
  }
  lin.to(Device::cuda(0));
  EXPECT_EQ(lin.weight.device(), Device::cuda(0));
  EXPECT_TRUE(lin.weight.requires_grad());
  EXPECT_EQ(lin.weight.to(Device::cpu()).to_vector(), w);
}

}  // namespace
}  // namespace scion
