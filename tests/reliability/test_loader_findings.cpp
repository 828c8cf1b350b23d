// Regression tests of what fuzzing (fuzz/, scripts/fuzz.sh) and the sanitizer run
// (scripts/sanitize.sh) found, one per finding, and of the last-resort handlers in main.
#include "reliability.h"
#include "scion/checkpoint.h"
#include "scion/safetensors.h"

using namespace reliability;

// An allocation the machine cannot make (a checkpoint that declares an absurd width) ends the
// command with a message and exit code 1, not an abort: the system's refusal (a width of 2^33,
// 8 TiB of embedding) as out of memory, and a block no device holds (a width of 2^40, beyond
// the allocators' 2^48 bytes) by the allocator, naming its size.
TEST(LoaderFindings, OutOfMemoryIsAnErrorNotAnAbort) {
  const fs::path dir = temp("oom");
  const std::string f = (dir / "huge.safetensors").string();
  for (const char* width : {"8589934592", "1099511627776"}) {
    SCOPED_TRACE(width);
    safetensors::save(f, {{"x", Tensor::zeros({1}, DType::f32)}},
                      {{checkpoint::kPluginKey, "model.gpt"},
                       {checkpoint::kConfigKey, std::string(R"({"vocab":257,"context":8,"layers":1,"width":)") + width +
                                                    R"(,"heads":1})"}});
    const Result r = sh("generate --checkpoint " + f + " --prompt hi --tokenizer tokenizer.bytes");
    EXPECT_EQ(exit_code(r), 1) << r.out;
    EXPECT_NE(r.out.find(std::string(width) == "8589934592"
                             ? "error: out of memory: scion generate needed more memory than this machine could give"
                             : "error: allocator: a block of 1130297953353728 bytes (1.05e+06 GiB) was asked of cpu, "
                               "more than any device holds"),
              std::string::npos)
        << r.out;
  }
  fs::remove_all(dir);
}

namespace {
// A safetensors file with one tensor whose header entry is `entry` and `data` bytes of data.
std::string write_safetensors(const fs::path& dir, const std::string& entry, size_t data) {
  std::string header = R"({"t":)" + entry + "}";
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[size_t(i)] = char((header.size() >> (8 * i)) & 0xff);
  bytes += header + std::string(data, '\0');
  const std::string path = (dir / "t.safetensors").string();
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}
std::string load_error(const std::string& path) {
  try {
    safetensors::load(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

// Shapes whose element count is negative or overflows int64 (and then matches the offsets by
// wrapping around) are refused before any allocation.
TEST(LoaderFindings, SafetensorsShapesThatOverflowOrAreNegative) {
  const fs::path dir = temp("st_shapes");
  // 2^32 * 2^32 elements wrap to 0 in int64: 0 bytes of data would have matched.
  std::string e = load_error(write_safetensors(dir, R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]})", 0));
  EXPECT_NE(e.find("tensor 't' has shape [4294967296, 4294967296]"), std::string::npos) << e;
  EXPECT_NE(e.find("too many elements"), std::string::npos) << e;
  // -1 * -4 = 4 elements: 16 bytes would have matched.
  e = load_error(write_safetensors(dir, R"({"dtype":"F32","shape":[-1,-4],"data_offsets":[0,16]})", 16));
  EXPECT_NE(e.find("tensor 't' has a negative dimension in shape [-1, -4]"), std::string::npos) << e;
  // 2^62 elements of 4 bytes: the byte count wraps to 0.
  e = load_error(write_safetensors(dir, R"({"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]})", 0));
  EXPECT_NE(e.find("too many elements"), std::string::npos) << e;
  // Offsets that are negative or not integers.
  e = load_error(write_safetensors(dir, R"({"dtype":"F32","shape":[1],"data_offsets":[-4,0]})", 4));
  EXPECT_NE(e.find("data_offsets"), std::string::npos) << e;
  // A well-formed one still loads.
  EXPECT_EQ(load_error(write_safetensors(dir, R"({"dtype":"F32","shape":[2,0],"data_offsets":[0,0]})", 0)), "");
  fs::remove_all(dir);
}
