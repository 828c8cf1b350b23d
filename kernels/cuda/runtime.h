// The CUDA runtime pieces the tensor runtime needs (runtime.cu): devices, memory, blocking
// copies. The kernels are declared in cuda_kernels.h and reached through ops/backend_cuda.cpp.
#pragma once
#include <cstddef>

namespace scion::cuda {

int device_count();  // 0 when no driver or device is present (never throws)
void* malloc_device(size_t bytes, int device);
void free_device(void* p, int device);
void copy_host_to_device(void* dst, const void* src, size_t bytes, int device);
void copy_device_to_host(void* dst, const void* src, size_t bytes, int device);
void copy_device_to_device(void* dst, const void* src, size_t bytes, int device);
void synchronize(int device);

}  // namespace scion::cuda
