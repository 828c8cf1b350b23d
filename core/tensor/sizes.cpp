#include "scion/sizes.h"

#include <unistd.h>

#include <cstdio>

#include "scion/error.h"

namespace scion {

namespace {
[[noreturn]] void overflow(const char* what, int64_t a, const char* op, int64_t b) {
  throw Error(detail::concat(what, ": ", a, " ", op, " ", b,
                             a < 0 || b < 0 ? " has a negative size" : " does not fit in 64 bits",
                             "; hint: a size in the graph or a file is absurd, check it"));
}
}  // namespace

int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) overflow(what, a, "×", b);
  return r;
}

int64_t checked_add(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  if (a < 0 || b < 0 || __builtin_add_overflow(a, b, &r)) overflow(what, a, "+", b);
  return r;
}

int64_t checked_product(const std::vector<int64_t>& dims, const char* what) {
  int64_t n = 1;
  for (int64_t d : dims) n = checked_mul(n, d, what);
  return n;
}

double machine_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page > 0 ? double(pages) * double(page) : 0.0;
}

std::string gib_text(double bytes) {
  char text[48];
  std::snprintf(text, sizeof text, "%.3g GiB", bytes / double(1 << 30));
  return text;
}

std::string memory_problem(double bytes, const std::string& what, const std::string& purpose) {
  const double ram = machine_memory_bytes();
  if (ram <= 0 || bytes <= ram) return "";
  return what + " needs " + gib_text(bytes) + purpose + "; this machine has " + gib_text(ram);
}

double transformer_parameters(double layers, double width, double ffn, double vocab, double context, bool tied,
                              bool gated_ffn) {
  const double w = width;
  return layers * (4 * w * w + (gated_ffn ? 3 : 2) * w * ffn + 9 * w + ffn) + vocab * w * (tied ? 1 : 2) + context * w;
}

double batch_bytes(double batch, double seq_len) { return batch * (seq_len + 1) * (4 + 8 + 8); }

double shuffle_buffer_bytes(double windows, double seq_len) { return 2 * windows * ((seq_len + 1) * 4 + 64); }

}  // namespace scion
