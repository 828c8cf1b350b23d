// Per-device caching allocator. Freed blocks go back to a size-bucketed pool and are handed
// out again, so a training step in steady state asks the system for no new memory; the
// statistics let a test show exactly that.
#pragma once
#include <cstddef>
#include <cstdint>

#include "scion/device.h"

namespace scion {

struct AllocatorStats {
  int64_t bytes_in_use = 0;       // bytes handed out and not yet returned
  int64_t peak_bytes_in_use = 0;  // high-water mark of bytes_in_use
  int64_t bytes_cached = 0;       // bytes held in the pool, free for reuse
  int64_t fresh_allocations = 0;  // requests the pool could not serve (went to the system)
  int64_t allocations = 0;        // all requests
};

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(size_t bytes) = 0;
  virtual void deallocate(void* p, size_t bytes) = 0;
  virtual AllocatorStats stats() const = 0;
  virtual void reset_peak() = 0;
  virtual void release_cached() = 0;  // give pooled blocks back to the system
};

// The allocator of a device (created on first use, lives for the process).
Allocator& allocator_for(Device d);

}  // namespace scion
