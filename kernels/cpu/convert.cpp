// Strided copies with dtype conversion, and fills.
#include <cstring>

#include "cpu/cpu_kernels.h"
#include "cpu/parallel.h"

namespace scion::cpu {
namespace {

// Every dtype goes through double (exact for all of them except i64 beyond 2^53, which is
// copied directly when both sides are i64).
inline double load(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::f32: return static_cast<const float*>(p)[i];
    case DType::bf16: return bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::f16: return f16_to_f32(static_cast<const uint16_t*>(p)[i]);
    case DType::i32: return static_cast<const int32_t*>(p)[i];
    case DType::i64: return double(static_cast<const int64_t*>(p)[i]);
    case DType::u16: return static_cast<const uint16_t*>(p)[i];
    case DType::u8: return static_cast<const uint8_t*>(p)[i];
  }
  return 0;
}
inline void store(void* p, DType t, int64_t i, double v) {
  switch (t) {
    case DType::f32: static_cast<float*>(p)[i] = float(v); break;
    case DType::bf16: static_cast<uint16_t*>(p)[i] = f32_to_bf16(float(v)); break;
    case DType::f16: static_cast<uint16_t*>(p)[i] = f32_to_f16(float(v)); break;
    case DType::i32: static_cast<int32_t*>(p)[i] = int32_t(v); break;
    case DType::i64: static_cast<int64_t*>(p)[i] = int64_t(v); break;
    case DType::u16: static_cast<uint16_t*>(p)[i] = uint16_t(v); break;
    case DType::u8: static_cast<uint8_t*>(p)[i] = uint8_t(v); break;
  }
}

}  // namespace

void strided_copy(const void* src, DType st, const int64_t* shape, const int64_t* strides, int ndim,
                  void* dst, DType dt) {
  const size_t es = dtype_size(st);
  if (ndim == 0) {
    if (st == dt) std::memcpy(dst, src, es);
    else store(dst, dt, 0, load(src, st, 0));
    return;
  }
  const int64_t n = shape[ndim - 1];
  const int64_t inner_stride = strides[ndim - 1];
  int64_t rows = 1;
  for (int d = 0; d < ndim - 1; ++d) rows *= shape[d];
  const bool same = st == dt;
  parallel_range(rows, grain_for(n), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      int64_t rem = r, off = 0;
      for (int d = ndim - 2; d >= 0; --d) {
        off += (rem % shape[d]) * strides[d];
        rem /= shape[d];
      }
      const char* s = static_cast<const char*>(src) + off * int64_t(es);
      if (same && inner_stride == 1) {
        std::memcpy(static_cast<char*>(dst) + r * n * int64_t(es), s, size_t(n) * es);
      } else if (same && es == 4) {
        auto* d32 = static_cast<uint32_t*>(dst) + r * n;
        auto* s32 = reinterpret_cast<const uint32_t*>(s);
        for (int64_t i = 0; i < n; ++i) d32[i] = s32[i * inner_stride];
      } else if (same && es == 8) {
        auto* d64 = static_cast<uint64_t*>(dst) + r * n;
        auto* s64 = reinterpret_cast<const uint64_t*>(s);
        for (int64_t i = 0; i < n; ++i) d64[i] = s64[i * inner_stride];
      } else if (same) {
        for (int64_t i = 0; i < n; ++i)
          std::memcpy(static_cast<char*>(dst) + (r * n + i) * int64_t(es),
                      s + i * inner_stride * int64_t(es), es);
      } else if (st == DType::f32 && dt == DType::bf16) {
        auto* d = static_cast<uint16_t*>(dst) + r * n;
        auto* sf = reinterpret_cast<const float*>(s);
        for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(sf[i * inner_stride]);
      } else if (st == DType::bf16 && dt == DType::f32) {
        auto* d = static_cast<float*>(dst) + r * n;
        auto* sb = reinterpret_cast<const uint16_t*>(s);
        for (int64_t i = 0; i < n; ++i) d[i] = bf16_to_f32(sb[i * inner_stride]);
      } else {
        for (int64_t i = 0; i < n; ++i) store(dst, dt, r * n + i, load(s, st, i * inner_stride));
      }
    }
  });
}

void fill(void* dst, DType t, int64_t n, double value) {
  if (t == DType::f32) {
    auto* y = static_cast<float*>(dst);
    const float v = float(value);
    parallel_range(n, 65536, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) y[i] = v;
    });
    return;
  }
  if (value == 0.0) {
    std::memset(dst, 0, size_t(n) * dtype_size(t));
    return;
  }
  for (int64_t i = 0; i < n; ++i) store(dst, t, i, value);
}

}  // namespace scion::cpu
