// File helpers shared by the core and plugins: glob expansion, atomic writes, read-only maps.
// One implementation of each, so that every command and plugin agrees on what a pattern
// matches and on how a file is replaced without ever leaving a torn one behind.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace scion::files {

// Regular files (not folders) matching a shell glob pattern ("data/*/train.txt"), sorted.
// Empty when nothing matches. A pattern without wildcards matches itself if it is a file.
std::vector<std::string> glob(const std::string& pattern);

// The union of every pattern's matches, sorted and deduplicated. Throws scion::Error
// "<who>: no file matches '<pattern>' (working directory ...)" for the first pattern that
// matches no file, so a misspelt second pattern is not hidden by a first one that matched.
std::vector<std::string> expand(const std::vector<std::string>& patterns, const std::string& who);

// Replaces `path` atomically: the bytes go to a temporary file in the same folder, which is
// fsynced, renamed over `path`, and the folder fsynced (so the rename survives a crash).
// A crash at any moment leaves either the old file or the new one, never a torn one.
// Use write() for data that is already in memory; AtomicWriter streams it piece by piece.
void write_atomic(const std::string& path, std::string_view bytes);

// Before a command writes `out` (a shard, a report): refuses, with scion::Error naming it and a
// hint, an `out` that is one of `inputs` (the same file by device and inode, whatever the
// names), an existing file inside a folder Scion owns (a run's weights, latest.json,
// state.json: scion/owned.h), and anything at `out` that is not a regular file (a directory,
// a device node, a FIFO). `who` starts the message ("tokenize").
void check_output(const std::string& out, const std::vector<std::string>& inputs, const std::string& who);

// What kind of file `path` is, in words, for messages ("a directory", "a character device");
// "a regular file" or "missing". Symlinks are followed.
std::string kind_of(const std::string& path);

// How open_to_write treats a file that is already there.
enum class Existing { keep, truncate, append };

// Opens `path` read-write, creating it (0644), without following a symlink at its name and
// without blocking on a FIFO: a symlink, a device or anything else that is not a regular file
// is refused (scion::Error naming it). The one way Scion opens a file it writes in place inside
// a run (its lock, metrics.jsonl). Returns the descriptor (close-on-exec).
int open_to_write(const std::string& path, Existing existing);

class AtomicWriter {
 public:
  // Creates the temporary file (never through a symlink); throws naming `path` when it exists
  // and is not a regular file (a directory, a device node, a FIFO: never replaced).
  explicit AtomicWriter(std::string path);
  ~AtomicWriter();                          // without commit(): removes the temporary file
  AtomicWriter(const AtomicWriter&) = delete;
  AtomicWriter& operator=(const AtomicWriter&) = delete;
  void write(const void* data, size_t n);  // throws naming the file (disk full, ...)
  void commit();                           // fsync, rename over the target, fsync the folder

 private:
  std::string path_, tmp_;
  int fd_ = -1;
};

// A whole file mapped read-only. Pages are read on first touch; release() hands a range
// back to the kernel once it has been copied, so reading a file through the map never
// holds more than the part being copied in memory next to the copies.
class MappedFile {
 public:
  // Throws scion::Error "<who>: cannot open '<path>': <reason>".
  MappedFile(const std::string& path, const std::string& who);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const char* data() const { return static_cast<const char*>(map_); }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }
  // Drops the pages wholly inside [offset, offset + n) from this process's memory (they
  // are read again from the file if touched later).
  void release(size_t offset, size_t n) const;

 private:
  std::string path_;
  void* map_ = nullptr;
  size_t size_ = 0;
};

}  // namespace scion::files
