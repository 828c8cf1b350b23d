// Counter-based random numbers shared by every device: value i of the stream `seed` is a
// pure function of (seed, i) (a splitmix64-style mix), so results never depend on threads.
#pragma once
#include <cmath>
#include <cstdint>
#include <string_view>

namespace scion {

inline constexpr uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}
inline constexpr uint64_t random_bits(uint64_t seed, uint64_t i) {
  return mix64(mix64(seed) ^ (i * 0xd1b54a32d192ed03ull));
}
// Uniform in [0, 1) with 24 bits.
inline float random_uniform(uint64_t seed, uint64_t i) {
  return float(random_bits(seed, i) >> 40) * (1.0f / 16777216.0f);
}
// Standard normal by Box-Muller from the two 32-bit halves of one draw.
inline float random_normal(uint64_t seed, uint64_t i) {
  const uint64_t r = random_bits(seed, i);
  const float u1 = (float(r >> 40) + 0.5f) * (1.0f / 16777216.0f);
  const float u2 = float((r >> 8) & 0xffffffu) * (1.0f / 16777216.0f);
  return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.283185307179586f * u2);
}
// A fixed 64-bit hash of a name (FNV-1a over its bytes), for seeds derived from node and
// stage names: std::hash is implementation-defined, so seeds from it would differ between
// standard libraries (and runs would not reproduce across them).
inline constexpr uint64_t hash_name(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : s) h = (h ^ uint64_t(static_cast<unsigned char>(c))) * 0x100000001b3ull;
  return h;
}
// Derives an independent seed for a sub-stream (a layer, a step).
inline constexpr uint64_t derive_seed(uint64_t seed, uint64_t salt) {
  return mix64(seed ^ mix64(salt + 0x632be59bd9b4e019ull));
}

}  // namespace scion
