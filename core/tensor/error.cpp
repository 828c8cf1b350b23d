// scion::Error's key function: its vtable and type information live here, once.
#include "scion/error.h"

namespace scion {
Error::~Error() = default;
}  // namespace scion
