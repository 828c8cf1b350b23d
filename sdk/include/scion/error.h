// Errors raised by Scion. Every error names what failed (an op, a file, a plugin) and,
// where it can, what it got and a hint; no error is ever a crash or a silent wrong result.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

// Classes whose type information must be unique across libraries (thrown or dynamic_cast
// across plugin boundaries) are exported and have their key function in libscion_core.
#define SCION_API __attribute__((visibility("default")))

namespace scion {

// The destructor is defined in libscion_core (the key function): an Error thrown by a plugin
// then points at libscion_core's vtable, not at a copy inside the plugin, and stays valid
// after the plugin's library is unloaded while the error propagates to main().
class SCION_API Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  ~Error() override;
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
