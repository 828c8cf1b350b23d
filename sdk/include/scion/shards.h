// Pre-tokenized shards in llm.c's format: a header of 256 little-endian int32 (magic
// 20240520, version 1, token count, the rest zero), then the tokens as uint16. Read through
// a memory map, so a shard of any size costs no RAM.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace scion::shards {

constexpr int32_t kShardMagic = 20240520;
constexpr int32_t kShardVersion = 1;

// Writes atomically (temporary file, fsync, rename). Every token must fit in uint16.
void write_shard(const std::string& path, const std::vector<int32_t>& tokens);

class ShardReader {
 public:
  explicit ShardReader(const std::string& path);  // validates header and size; throws naming the file
  ~ShardReader();
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;
  int64_t size() const { return count_; }
  uint16_t operator[](int64_t i) const { return tokens_[i]; }
  const uint16_t* data() const { return tokens_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const uint16_t* tokens_ = nullptr;
  int64_t count_ = 0;
};

}  // namespace scion::shards
