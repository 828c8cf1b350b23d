#include "scion/shards.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "scion/error.h"
#include "scion/files.h"

namespace scion::shards {

void write_shard(const std::string& path, const std::vector<int32_t>& tokens) {
  std::vector<int32_t> header(256, 0);
  header[0] = kShardMagic;
  header[1] = kShardVersion;
  header[2] = int32_t(tokens.size());
  SCION_CHECK(tokens.size() < (size_t(1) << 31), "write_shard: ", tokens.size(), " tokens do not fit one shard");
  std::vector<uint16_t> body(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    SCION_CHECK(tokens[i] >= 0 && tokens[i] <= 0xffff, "write_shard: token ", tokens[i], " at position ", i,
                " does not fit uint16 (vocabularies above 65536 entries need another format)");
    body[i] = uint16_t(tokens[i]);
  }
  files::AtomicWriter out(path);
  out.write(header.data(), header.size() * 4);
  out.write(body.data(), body.size() * 2);
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
  const int32_t* h = static_cast<const int32_t*>(map_);
  if (h[0] != kShardMagic) {
    const int32_t got = h[0];
    ::munmap(map_, map_bytes_);
    map_ = nullptr;
    throw Error("data.shards: '" + path + "' has magic " + std::to_string(got) + ", expected " +
                std::to_string(kShardMagic) + " (llm.c's uint16 token shard); hint: write shards with `scion tokenize`");
  }
  if (h[1] != kShardVersion) {
    const int32_t got = h[1];
    ::munmap(map_, map_bytes_);
    map_ = nullptr;
    throw Error("data.shards: '" + path + "' has version " + std::to_string(got) + ", expected 1");
  }
  count_ = h[2];
  const size_t want = 1024 + size_t(count_) * 2;
  if (count_ < 0 || bytes != want) {
    ::munmap(map_, map_bytes_);
    map_ = nullptr;
    throw Error("data.shards: '" + path + "' declares " + std::to_string(count_) + " tokens (" + std::to_string(want) +
                " bytes) but has " + std::to_string(bytes) + " bytes (truncated or corrupt)");
  }
  tokens_ = reinterpret_cast<const uint16_t*>(static_cast<const char*>(map_) + 1024);
}

ShardReader::~ShardReader() {
  if (map_) ::munmap(map_, map_bytes_);
}

}  // namespace scion::shards
