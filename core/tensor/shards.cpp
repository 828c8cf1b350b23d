#include "scion/shards.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <limits>

#include "scion/error.h"
#include "scion/files.h"

namespace scion::shards {

TokenWidth width_for_vocab(int64_t vocab_size) { return vocab_size <= 65536 ? TokenWidth::u16 : TokenWidth::u32; }

namespace {

template <typename T>
std::vector<T> narrow_tokens(const std::vector<int32_t>& tokens, const char* what) {
  std::vector<T> body(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    SCION_CHECK(tokens[i] >= 0 && uint64_t(tokens[i]) <= uint64_t(std::numeric_limits<T>::max()), "write_shard: token ",
                tokens[i], " at position ", i, " does not fit ", what,
                sizeof(T) == 2 ? " (vocabularies above 65536 entries need the uint32 format)" : "");
    body[i] = T(tokens[i]);
  }
  return body;
}

}  // namespace

void write_shard(const std::string& path, const std::vector<int32_t>& tokens, TokenWidth width) {
  const bool wide = width == TokenWidth::u32;
  std::vector<int32_t> header(256, 0);
  header[0] = wide ? kShardMagic32 : kShardMagic;
  header[1] = wide ? kShardVersion32 : kShardVersion;
  header[2] = int32_t(tokens.size());
  SCION_CHECK(tokens.size() < (size_t(1) << 31), "write_shard: ", tokens.size(), " tokens do not fit one shard");
  files::AtomicWriter out(path);
  out.write(header.data(), header.size() * 4);
  if (wide) {
    const auto body = narrow_tokens<uint32_t>(tokens, "uint32");
    out.write(body.data(), body.size() * 4);
  } else {
    const auto body = narrow_tokens<uint16_t>(tokens, "uint16");
    out.write(body.data(), body.size() * 2);
  }
  out.commit();
}

ShardReader::ShardReader(const std::string& path) : path_(path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  SCION_CHECK(fd >= 0, "data.shards: cannot open '", path, "': ", std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  const size_t bytes = size_t(st.st_size);
  if (bytes < 1024) {
    ::close(fd);
    throw Error("data.shards: '" + path + "' is " + std::to_string(bytes) +
                " bytes, shorter than the 1024-byte header (truncated, or not a shard)");
  }
  map_ = ::mmap(nullptr, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  SCION_CHECK(map_ != MAP_FAILED, "data.shards: cannot map '", path, "'");
  map_bytes_ = bytes;
  auto refuse = [&](const std::string& why) {
    ::munmap(map_, map_bytes_);
    map_ = nullptr;
    throw Error("data.shards: '" + path + "' " + why);
  };
  const int32_t* h = static_cast<const int32_t*>(map_);
  if (h[0] != kShardMagic && h[0] != kShardMagic32)
    refuse("has magic " + std::to_string(h[0]) + ", expected " + std::to_string(kShardMagic) +
           " (llm.c's uint16 token shard) or " + std::to_string(kShardMagic32) +
           " (its uint32 one); hint: write shards with `scion tokenize`");
  width_ = h[0] == kShardMagic ? TokenWidth::u16 : TokenWidth::u32;
  const int32_t want_version = width_ == TokenWidth::u16 ? kShardVersion : kShardVersion32;
  if (h[1] != want_version)
    refuse("has version " + std::to_string(h[1]) + ", expected " + std::to_string(want_version) + " for magic " +
           std::to_string(h[0]));
  count_ = h[2];
  const size_t token_bytes = width_ == TokenWidth::u16 ? 2 : 4;
  const size_t want = 1024 + size_t(count_) * token_bytes;
  if (count_ < 0 || bytes != want)
    refuse("declares " + std::to_string(count_) + " tokens (" + std::to_string(want) + " bytes) but has " +
           std::to_string(bytes) + " bytes (truncated or corrupt)");
  tokens_ = static_cast<const char*>(map_) + 1024;
}

ShardReader::~ShardReader() {
  if (map_) ::munmap(map_, map_bytes_);
}

}  // namespace scion::shards
