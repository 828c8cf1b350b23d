#include <gtest/gtest.h>
#include "scion/ops.h"
using namespace scion;
TEST(Smoke, Add) {
  Tensor a = Tensor::from_vector({1, 2, 3}, {3});
  Tensor b = Tensor::from_vector({4, 5, 6}, {3});
  EXPECT_EQ((a + b).to_vector(), (std::vector<float>{5, 7, 9}));
}
