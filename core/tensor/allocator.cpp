// Caching allocators. Requests are rounded up to a size class (multiples of 512 bytes up to
// 1 MiB, then powers of two split in quarters) and freed blocks wait in a per-class free list
// for the next request of that class, so a loop that allocates the same shapes every step
// reaches a steady state with no system allocations.
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

#include "scion/allocator.h"
#include "scion/error.h"
#include "scion/sizes.h"
#ifdef SCION_HAVE_CUDA
#include "cuda/runtime.h"
#endif

namespace scion {
namespace {

// Requests above kMaxBlockBytes have no class (the doubling below would pass 2^63 and wrap
// to 0, looping forever): refused, naming the size.
size_t size_class(size_t bytes, Device device) {
  if (bytes > kMaxBlockBytes)
    throw Error(detail::concat("allocator: a block of ", bytes, " bytes (", gib_text(double(bytes)), ") was asked of ",
                               device.str(), ", more than any device holds (the limit is ", gib_text(kMaxBlockBytes),
                               "); hint: a size in the graph or a checkpoint is absurd, check it"));
  if (bytes == 0) bytes = 1;
  constexpr size_t kSmall = 512, kLarge = size_t(1) << 20;
  if (bytes <= kLarge) return (bytes + kSmall - 1) / kSmall * kSmall;
  size_t p = kLarge;
  while (p < bytes) p <<= 1;
  const size_t quarter = p / 8;  // classes p/2 + k*p/8, k = 1..4
  size_t c = p / 2;
  while (c < bytes) c += quarter;
  return c;
}

class CachingAllocator final : public Allocator {
 public:
  using RawAlloc = void* (*)(size_t, int);
  using RawFree = void (*)(void*, int);
  CachingAllocator(RawAlloc a, RawFree f, int device, bool cuda)
      : raw_alloc_(a), raw_free_(f), device_(device), cuda_(cuda) {}
  ~CachingAllocator() override { release_cached(); }

  void* allocate(size_t bytes) override {
    const size_t cls = size_class(bytes, device());
    std::lock_guard lock(mu_);
    ++stats_.allocations;
    void* p = nullptr;
    auto it = free_.find(cls);
    if (it != free_.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      stats_.bytes_cached -= int64_t(cls);
    } else {
      p = raw_alloc_(cls, device_);
      ++stats_.fresh_allocations;
    }
    stats_.bytes_in_use += int64_t(cls);
    if (stats_.bytes_in_use > stats_.peak_bytes_in_use) stats_.peak_bytes_in_use = stats_.bytes_in_use;
    return p;
  }

  void deallocate(void* p, size_t bytes) override {
    if (!p) return;
    const size_t cls = size_class(bytes, device());
    std::lock_guard lock(mu_);
    free_[cls].push_back(p);
    stats_.bytes_in_use -= int64_t(cls);
    stats_.bytes_cached += int64_t(cls);
  }

  AllocatorStats stats() const override {
    std::lock_guard lock(mu_);
    return stats_;
  }
  void reset_peak() override {
    std::lock_guard lock(mu_);
    stats_.peak_bytes_in_use = stats_.bytes_in_use;
  }
  void release_cached() override {
    std::lock_guard lock(mu_);
    for (auto& [cls, blocks] : free_)
      for (void* p : blocks) raw_free_(p, device_);
    free_.clear();
    stats_.bytes_cached = 0;
  }

 private:
  RawAlloc raw_alloc_;
  RawFree raw_free_;
  int device_;
  bool cuda_;
  Device device() const { return cuda_ ? Device::cuda(device_) : Device::cpu(); }
  mutable std::mutex mu_;
  std::unordered_map<size_t, std::vector<void*>> free_;
  AllocatorStats stats_;
};

void* host_alloc(size_t bytes, int) {
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  if (!p) throw std::bad_alloc();
  return p;
}
void host_free(void* p, int) { std::free(p); }

}  // namespace

Allocator& allocator_for(Device d) {
  if (d.is_cpu()) {
    // Intentionally leaked: tensors in static storage may be freed after main returns.
    static auto* cpu = new CachingAllocator(host_alloc, host_free, 0, false);
    return *cpu;
  }
#ifdef SCION_HAVE_CUDA
  static std::mutex mu;
  static std::map<int, CachingAllocator*> per_device;
  std::lock_guard lock(mu);
  SCION_CHECK(d.index >= 0 && d.index < cuda::device_count(), "device ", d.str(),
              " is not available (", cuda::device_count(), " CUDA device(s) found)");
  auto& a = per_device[d.index];
  if (!a) a = new CachingAllocator(cuda::malloc_device, cuda::free_device, d.index, true);
  return *a;
#else
  throw Error("device " + d.str() + " requested, but this build of Scion has no CUDA backend "
              "(configure with -DSCION_CUDA=ON on a machine with nvcc)");
#endif
}

}  // namespace scion
