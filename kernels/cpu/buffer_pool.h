// Buffers reused across calls (no allocation once the largest shapes were seen). A pool, not
// thread_local storage: a thread that waits in parallel_range may run another GEMM of the same
// thread before the first one is done.
#pragma once
#include <memory>
#include <mutex>
#include <vector>

namespace scion::cpu {

template <class T>
class BufferPool {
 public:
  std::unique_ptr<T> acquire() {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) return std::make_unique<T>();
    auto b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  void release(std::unique_ptr<T> b) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(std::move(b));
  }

 private:
  std::mutex mu_;
  std::vector<std::unique_ptr<T>> free_;
};

}  // namespace scion::cpu
