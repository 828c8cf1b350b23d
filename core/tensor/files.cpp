#include "scion/files.h"

#include <fcntl.h>
#include <glob.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "scion/error.h"
#include "scion/owned.h"

namespace scion::files {

namespace fs = std::filesystem;

std::vector<std::string> glob(const std::string& pattern) {
  glob_t g{};
  const int rc = ::glob(pattern.c_str(), 0, nullptr, &g);  // sorted (no GLOB_NOSORT)
  std::vector<std::string> out;
  if (rc == 0)
    for (size_t i = 0; i < g.gl_pathc; ++i) {
      std::error_code ec;
      if (fs::is_regular_file(g.gl_pathv[i], ec)) out.emplace_back(g.gl_pathv[i]);
    }
  globfree(&g);
  return out;
}

std::vector<std::string> expand(const std::vector<std::string>& patterns, const std::string& who) {
  std::set<std::string> out;
  for (const std::string& p : patterns) {
    const std::vector<std::string> m = glob(p);
    if (m.empty())
      throw Error(who + ": no file matches '" + p + "' (working directory " + fs::current_path().string() + ")");
    out.insert(m.begin(), m.end());
  }
  return {out.begin(), out.end()};
}

std::string kind_of(const std::string& path) {
  std::error_code ec;
  switch (fs::status(path, ec).type()) {
    case fs::file_type::not_found: return "missing";
    case fs::file_type::regular: return "a regular file";
    case fs::file_type::directory: return "a directory";
    case fs::file_type::character: return "a character device";
    case fs::file_type::block: return "a block device";
    case fs::file_type::fifo: return "a FIFO";
    case fs::file_type::socket: return "a socket";
    default: return "not a regular file";
  }
}

namespace {
// What AtomicWriter may replace: nothing yet, or a regular file (never a directory, a device
// node or a FIFO, which a rename would swap for a regular file).
void check_replaceable(const std::string& path) {
  const std::string kind = kind_of(path);
  SCION_CHECK(kind != "a directory", "cannot write '", path, "': it is a directory (name a file to write)");
  SCION_CHECK(kind == "missing" || kind == "a regular file", "cannot write '", path, "': it is ", kind,
              ", which Scion does not replace (name a regular file to write)");
}
}  // namespace

void check_output(const std::string& out, const std::vector<std::string>& inputs, const std::string& who) {
  std::error_code ec;
  check_replaceable(out);
  if (!fs::exists(out, ec)) return;
  for (const std::string& in : inputs)
    SCION_CHECK(!fs::equivalent(out, in, ec), who, ": --out '", out, "' is the input '", in,
                "' (the same file), which writing would replace (hint: name another file)");
  if (const auto dir = owned::owning_folder(out))
    throw Error(who + ": --out '" + out + "' is a file of '" + dir->string() +
                "', a folder Scion wrote (a run, its checkpoints or a datastore), which writing would replace "
                "(hint: name a file outside it)");
}

int open_to_write(const std::string& path, Existing existing) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC |
                                          (existing == Existing::append ? O_APPEND : 0), 0644);
  if (fd < 0) {
    const int e = errno;
    SCION_CHECK(e != ELOOP, "cannot write '", path, "': it is a symlink, which Scion does not follow inside a folder "
                "it writes (hint: remove the link)");
    throw Error("cannot write '" + path + "': " + std::strerror(e));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error("cannot write '" + path + "': it is " + kind_of(path) + ", not a regular file (hint: remove it)");
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
  if (existing == Existing::truncate && ::ftruncate(fd, 0) != 0) {
    const int e = errno;
    ::close(fd);
    throw Error("cannot write '" + path + "': " + std::strerror(e));
  }
  return fd;
}

AtomicWriter::AtomicWriter(std::string path) : path_(std::move(path)) {
  const fs::path target(path_);
  fs::path tmp = (target.has_parent_path() ? target.parent_path() : fs::path(".")) / target.filename();
  tmp += ".tmp" + std::to_string(::getpid());  // per process: two writers never share one
  tmp_ = tmp.string();
  check_replaceable(path_);
  // A leftover of this process id's earlier write is ours to replace; a symlink planted at the
  // temporary name is never followed (O_NOFOLLOW | O_EXCL after the unlink).
  ::unlink(tmp_.c_str());
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd_ < 0) {
    const int e = errno;
    std::error_code ec;
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    SCION_CHECK(e != ENOENT || fs::is_directory(dir, ec), "cannot create '", path_, "': the folder '", dir.string(),
                "' does not exist");
    SCION_CHECK(e != ENAMETOOLONG, "cannot create '", path_, "': the name of its temporary file '",
                tmp_.substr(tmp_.rfind('/') + 1), "' is longer than the system allows (", std::strerror(e),
                "); choose a shorter file name");
    throw Error("cannot create '" + path_ + "' (through its temporary file '" + tmp_ + "'): " + std::strerror(e));
  }
}

AtomicWriter::~AtomicWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
}

void AtomicWriter::write(const void* data, size_t n) {
  SCION_CHECK(fd_ >= 0, "writing '", path_, "' after commit");
  const char* c = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd_, c, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error("writing '" + tmp_ + "' failed: " + std::strerror(errno));
    }
    c += w;
    n -= size_t(w);
  }
}

void AtomicWriter::commit() {
  SCION_CHECK(fd_ >= 0, "'", path_, "' committed twice");
  const int fd = fd_;
  fd_ = -1;
  if (::fsync(fd) != 0) {
    const int e = errno;
    ::close(fd);
    throw Error("flushing '" + tmp_ + "' failed: " + std::strerror(e));
  }
  if (::close(fd) != 0) throw Error("flushing '" + tmp_ + "' failed: " + std::strerror(errno));
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) {
    const int e = errno;
    if (e == EISDIR) throw Error("cannot write '" + path_ + "': it is a directory (name a file to write)");
    throw Error("cannot put '" + path_ + "' in place (renaming its temporary file '" + tmp_ + "'): " + std::strerror(e));
  }
  tmp_.clear();  // renamed: nothing left to remove
  const fs::path target(path_);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);  // make the rename itself durable
    ::close(dfd);
  }
}

void write_atomic(const std::string& path, std::string_view bytes) {
  AtomicWriter w(path);
  w.write(bytes.data(), bytes.size());
  w.commit();
}

MappedFile::MappedFile(const std::string& path, const std::string& who) : path_(path) {
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever; it is refused below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  SCION_CHECK(fd >= 0, who, ": cannot open '", path, "': ", std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(who + ": '" + path + "' is " + kind_of(path) + ", not a regular file (hint: name the file itself)");
  }
  size_ = size_t(st.st_size);
  if (size_ > 0) {
    map_ = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
    const int e = errno;
    ::close(fd);
    if (map_ == MAP_FAILED) {
      map_ = nullptr;
      throw Error(who + ": cannot map '" + path + "': " + std::strerror(e));
    }
  } else {
    ::close(fd);
  }
}

MappedFile::~MappedFile() {
  if (map_) ::munmap(map_, size_);
}

void MappedFile::release(size_t offset, size_t n) const {
  if (!map_ || n == 0) return;
  const size_t page = size_t(::sysconf(_SC_PAGESIZE));
  const size_t b = (offset + page - 1) / page * page, e = std::min(offset + n, size_) / page * page;
  // MADV_DONTNEED on a private read-only file map drops the pages; touching them again
  // re-reads the file, so this changes memory use, never contents.
  if (e > b) ::madvise(static_cast<char*>(map_) + b, e - b, MADV_DONTNEED);
}

}  // namespace scion::files
