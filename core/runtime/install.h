// Where this Scion's own files are, found from the location of libscion_core at run time, so
// one build works from any prefix (nothing absolute is compiled in): an install
// (`cmake --install build --prefix P`, the Debian package) or the build tree itself.
#pragma once
#include <string>
#include <vector>

namespace scion::runtime {

// The folder above the library folder that holds libscion_core: an install's prefix (P of
// P/lib/libscion_core.so), or the build tree.
std::string install_prefix();

// The plugin folders searched when no other is named, in order: <prefix>/lib/scion/plugins
// (an install; named even when missing, unless this is a build tree), then <prefix>/plugins
// when it exists (the build tree's plugin output folder).
std::vector<std::string> default_plugin_dirs();

// Scion's data directory, <prefix>/share/scion: the bundled data/ (vocabularies, corpora),
// graphs/ and sdk/example. The build tree has it too (links to the source tree), so graphs
// resolve the same way from a build and from an install.
std::string data_dir();

}  // namespace scion::runtime
