// What the fuzz targets share: the loaders under test read files, so each input is put in a
// file that lives in memory (memfd; no disk traffic per execution) and named by its
// /proc/self/fd path, which every loader opens, stats and maps like a real file.
#pragma once
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace scion::fuzz {

class MemFile {
 public:
  explicit MemFile(const char* tag) : fd_(::memfd_create(tag, 0)) {
    if (fd_ < 0) ::abort();
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemFile() { ::close(fd_); }
  MemFile(const MemFile&) = delete;
  MemFile& operator=(const MemFile&) = delete;
  // Replaces the file's contents with `data`.
  const std::string& set(std::string_view data) {
    if (::ftruncate(fd_, 0) != 0) ::abort();
    size_t at = 0;
    while (at < data.size()) {
      const ssize_t n = ::pwrite(fd_, data.data() + at, data.size() - at, off_t(at));
      if (n <= 0) ::abort();
      at += size_t(n);
    }
    return path_;
  }
  const std::string& path() const { return path_; }

 private:
  int fd_;
  std::string path_;
};

// Splits an input into up to `n` parts at a separator line "\n----\n" (the seeds are built the
// same way), so one input can hold several files: a vocabulary and its merges, latest.json
// and state.json. Missing parts are empty.
inline std::vector<std::string_view> split_parts(const uint8_t* data, size_t size, size_t n) {
  std::string_view s(reinterpret_cast<const char*>(data), size);
  constexpr std::string_view sep = "\n----\n";
  std::vector<std::string_view> out;
  while (out.size() + 1 < n) {
    const size_t at = s.find(sep);
    if (at == std::string_view::npos) break;
    out.push_back(s.substr(0, at));
    s.remove_prefix(at + sep.size());
  }
  out.push_back(s);
  out.resize(n);
  return out;
}

}  // namespace scion::fuzz
