// libFuzzer target: llm.c token shards, uint16 and uint32 (the 256-int32 header, the token count against the
// file size). A scion::Error naming the file is the expected refusal; every token of an
// accepted shard is read.
#include <cstdint>

#include "fuzz_input.h"
#include "scion/error.h"
#include "scion/shards.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static scion::fuzz::MemFile file("shard");
  const std::string& path = file.set({reinterpret_cast<const char*>(data), size});
  try {
    scion::shards::ShardReader r(path);
    uint64_t sum = 0;
    for (int64_t i = 0; i < r.size(); ++i) sum += r[i];
    const uint64_t token_bytes = r.width() == scion::shards::TokenWidth::u16 ? 2 : 4;
    if (r.size() < 0 || uint64_t(r.size()) * token_bytes + 1024 > size) ::abort();  // more tokens than the file holds
    (void)sum;
  } catch (const scion::Error&) {
  }
  return 0;
}
