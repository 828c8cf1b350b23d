// Pre-tokenized shards in llm.c's formats: a header of 256 little-endian int32 (magic,
// version, token count, the rest zero), then the tokens. GPT-2's format (magic 20240520,
// version 1) holds uint16 tokens; Llama 3's (magic 20240801, version 7) holds uint32 tokens,
// for vocabularies above 65536 ids. Read through a memory map, so a shard of any size costs
// no RAM.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace scion::shards {

constexpr int32_t kShardMagic = 20240520;  // uint16 tokens
constexpr int32_t kShardVersion = 1;
constexpr int32_t kShardMagic32 = 20240801;  // uint32 tokens
constexpr int32_t kShardVersion32 = 7;

enum class TokenWidth { u16, u32 };

// The width a vocabulary of `vocab_size` ids needs: uint16 up to 65536 ids, uint32 above.
TokenWidth width_for_vocab(int64_t vocab_size);

// Writes atomically (temporary file, fsync, rename). Every token must fit the width.
void write_shard(const std::string& path, const std::vector<int32_t>& tokens, TokenWidth width = TokenWidth::u16);

class ShardReader {
 public:
  explicit ShardReader(const std::string& path);  // validates header and size; throws naming the file
  ~ShardReader();
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;
  int64_t size() const { return count_; }
  TokenWidth width() const { return width_; }
  uint32_t operator[](int64_t i) const {
    return width_ == TokenWidth::u16 ? static_cast<const uint16_t*>(tokens_)[i] : static_cast<const uint32_t*>(tokens_)[i];
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t map_bytes_ = 0;
  const void* tokens_ = nullptr;
  TokenWidth width_ = TokenWidth::u16;
  int64_t count_ = 0;
};

}  // namespace scion::shards
