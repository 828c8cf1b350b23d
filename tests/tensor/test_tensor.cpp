// Tensor basics: factories, metadata, views, copies, random streams, printing.
#include <gtest/gtest.h>

#include <cmath>

#include "scion/ops.h"
#include "scion/threads.h"

using namespace scion;

TEST(Tensor, FactoriesAndMetadata) {
  Tensor z = Tensor::zeros({2, 3});
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.strides(), (Strides{3, 1}));
  EXPECT_EQ(z.numel(), 6);
  EXPECT_EQ(z.dtype(), DType::f32);
  EXPECT_TRUE(z.device().is_cpu());
  EXPECT_TRUE(z.is_contiguous());
  EXPECT_EQ(z.size(-1), 3);
  for (float v : z.to_vector()) EXPECT_EQ(v, 0.f);
  Tensor f = Tensor::full({4}, 2.5, DType::bf16);
  for (float v : f.to_vector()) EXPECT_EQ(v, 2.5f);
  Tensor ar = Tensor::arange(5);
  EXPECT_EQ(ar.to_vector_i64(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_EQ(Tensor::scalar(3.f).item(), 3.f);
  EXPECT_EQ(Tensor::scalar(3.f).dim(), 0);
}

TEST(Tensor, ViewsShareStorage) {
  Tensor a = Tensor::from_vector({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor t = a.transpose(0, 1);
  EXPECT_EQ(t.shape(), (Shape{3, 2}));
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(t.to_vector(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  Tensor n = a.narrow(1, 1, 2);
  EXPECT_EQ(n.to_vector(), (std::vector<float>{1, 2, 4, 5}));
  Tensor r = a.reshape({3, 2});
  EXPECT_EQ(r.to_vector(), (std::vector<float>{0, 1, 2, 3, 4, 5}));
  r.fill_(7.f);  // a view writes through
  EXPECT_EQ(a.to_vector()[0], 7.f);
  Tensor c = t.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.to_vector(), t.to_vector());
  Tensor p = Tensor::randn({2, 3, 4}, 1).permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(a.unsqueeze(0).shape(), (Shape{1, 2, 3}));
  EXPECT_EQ(a.unsqueeze(0).squeeze(0).shape(), (Shape{2, 3}));
  EXPECT_EQ(a.view({-1}).shape(), (Shape{6}));
}

TEST(Tensor, ViewErrorsNameWhatWasGiven) {
  Tensor a = Tensor::zeros({2, 3});
  try {
    a.view({4, 2});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[2, 3]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("[4, 2]"), std::string::npos) << e.what();
  }
  EXPECT_THROW(a.transpose(0, 1).view({6}), Error);
  EXPECT_THROW(a.narrow(1, 2, 2), Error);
  EXPECT_THROW(a.permute({0, 0}), Error);
  EXPECT_THROW(a.size(2), Error);
  EXPECT_THROW(Tensor().shape(), Error);
  EXPECT_THROW(Tensor::zeros({2}).to(Device::cuda(0)).numel(), Error);
  EXPECT_THROW(Device::parse("gpu"), Error);
  EXPECT_THROW(dtype_from_string("float8"), Error);
}

TEST(Tensor, CopyConvertsAndChecksShape) {
  Tensor a = Tensor::from_vector({1.5f, -2.f, 3.25f}, {3});
  Tensor b = Tensor::zeros({3}, DType::bf16);
  b.copy_(a);
  EXPECT_EQ(b.to_vector(), (std::vector<float>{1.5f, -2.f, 3.25f}));
  Tensor i = a.to(DType::i64);
  EXPECT_EQ(i.to_vector_i64(), (std::vector<int64_t>{1, -2, 3}));
  EXPECT_THROW(b.copy_(Tensor::zeros({4})), Error);
  // Strided destination.
  Tensor m = Tensor::zeros({2, 3});
  m.transpose(0, 1).copy_(Tensor::from_vector({1, 2, 3, 4, 5, 6}, {3, 2}));
  EXPECT_EQ(m.to_vector(), (std::vector<float>{1, 3, 5, 2, 4, 6}));
}

TEST(Tensor, Bf16AndF16RoundTrip) {
  // Values exactly representable in both formats survive the round trip.
  for (float v : {0.f, 1.f, -2.f, 0.5f, 1024.f, -0.125f}) {
    EXPECT_EQ(bf16_to_f32(f32_to_bf16(v)), v);
    EXPECT_EQ(f16_to_f32(f32_to_f16(v)), v);
  }
  EXPECT_EQ(f32_to_f16(65504.f), 0x7bffu);          // largest f16
  EXPECT_EQ(f32_to_f16(1e6f), 0x7c00u);             // overflow -> inf
  EXPECT_EQ(f32_to_f16(5.960464477539063e-08f), 1u);  // smallest subnormal
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(NAN))));
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
  EXPECT_EQ(f32_to_bf16(1.00390625f), 0x3f80u);  // tie rounds to even (down)
  EXPECT_EQ(f32_to_bf16(1.01171875f), 0x3f82u);  // tie rounds to even (up)
}

TEST(Tensor, RandomIsSeededAndThreadIndependent) {
  set_num_threads(1);
  std::vector<float> one = Tensor::randn({1000, 37}, 42).to_vector();
  set_num_threads(2);
  std::vector<float> two = Tensor::randn({1000, 37}, 42).to_vector();
  EXPECT_EQ(one, two);
  std::vector<float> other = Tensor::randn({1000, 37}, 43).to_vector();
  EXPECT_NE(one, other);
  // Moments of the normal stream are about right.
  double s = 0, s2 = 0;
  for (float v : one) s += v, s2 += double(v) * v;
  const double mean = s / double(one.size()), var = s2 / double(one.size()) - mean * mean;
  EXPECT_NEAR(mean, 0.0, 0.02);
  EXPECT_NEAR(var, 1.0, 0.03);
  Tensor u = Tensor::rand({10000}, 5, -1.f, 1.f);
  for (float v : u.to_vector()) {
    EXPECT_GE(v, -1.f);
    EXPECT_LT(v, 1.f);
  }
  Tensor ri = Tensor::randint({1000}, 9, 3, 7);
  for (int64_t v : ri.to_vector_i64()) {
    EXPECT_GE(v, 3);
    EXPECT_LT(v, 7);
  }
}

TEST(Tensor, PrintingIsReadable) {
  Tensor a = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3});
  const std::string s = a.to_string();
  EXPECT_NE(s.find("f32[2, 3] cpu"), std::string::npos) << s;
  EXPECT_NE(s.find("[[1, 2, 3],"), std::string::npos) << s;
  const std::string big = Tensor::zeros({100}).to_string();
  EXPECT_NE(big.find("..."), std::string::npos) << big;
  EXPECT_LT(big.size(), 200u);
}
