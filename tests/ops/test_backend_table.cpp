// The backend tables are checked complete when they are built: every entry of struct Backend
// set on each device's table, and a table with a missing entry refused with its name.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <string>

#include "ops/backend.h"
#include "scion/error.h"

namespace scion::ops::detail {
namespace {

// The message check_backend_complete throws for t, or "" when it accepts t.
std::string refusal(const Backend& t) {
  try {
    check_backend_complete(t);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(BackendTable, EveryDeviceTableIsComplete) {
  EXPECT_EQ(refusal(backend_cpu()), "");
  // The CUDA table is built without a GPU (it only takes the kernels' addresses).
  if (const Backend* cuda = backend_cuda()) {
    EXPECT_EQ(refusal(*cuda), "");
  } else {
    GTEST_SKIP() << "this build has no CUDA backend";
  }
}

TEST(BackendTable, AMissingEntryIsNamed) {
  Backend t = backend_cpu();
  t.gemm_batched = nullptr;
  std::string msg = refusal(t);
  EXPECT_NE(msg.find("cpu backend table"), std::string::npos) << msg;
  EXPECT_NE(msg.find("gemm_batched"), std::string::npos) << msg;
  // The first and the last entries are covered too, and every missing entry is named.
  t.binary = nullptr;
  t.scale_inplace = nullptr;
  msg = refusal(t);
  EXPECT_NE(msg.find("binary, gemm_batched, scale_inplace"), std::string::npos) << msg;
}

TEST(BackendTable, EachEntryIsChecked) {
  // Null each pointer of a complete table in turn: every one is refused.
  const Backend full = backend_cpu();
  constexpr size_t first = offsetof(Backend, binary);
  const size_t entries = (sizeof(Backend) - first) / sizeof(void (*)());
  for (size_t i = 0; i < entries; ++i) {
    Backend t = full;
    void (*none)() = nullptr;
    std::memcpy(reinterpret_cast<char*>(&t) + first + i * sizeof(none), &none, sizeof(none));
    EXPECT_NE(refusal(t), "") << "entry " << i << " of struct Backend left null was accepted";
  }
}

}  // namespace
}  // namespace scion::ops::detail
