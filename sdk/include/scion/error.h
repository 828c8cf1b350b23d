// Errors raised by Scion. Every error names what failed (an op, a file, a plugin) and,
// where it can, what it got and a hint; no error is ever a crash or a silent wrong result.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace scion {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}
}  // namespace detail

}  // namespace scion

// SCION_CHECK(cond, parts...) throws scion::Error with the parts streamed together.
#define SCION_CHECK(cond, ...)                                         \
  do {                                                                 \
    if (!(cond)) throw ::scion::Error(::scion::detail::concat(__VA_ARGS__)); \
  } while (0)
