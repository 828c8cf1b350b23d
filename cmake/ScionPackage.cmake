# The Debian package: `cpack -G DEB` in the build folder (or --config <build>/CPackConfig.cmake)
# writes scion_<version>_<arch>.deb holding the install of cmake/ScionInstall.cmake under /usr.
# Its Depends are computed by dpkg-shlibdeps from what the binaries link (libtbb, Boost's
# program_options and filesystem, OpenBLAS, libstdc++), so `apt install ./scion_*.deb` pulls
# exactly those. Building third-party plugins with the SDK also needs a compiler, CMake and
# the headers the SDK includes: Recommends. A CUDA build links NVIDIA's libraries, which no
# Debian package provides: package a CPU build (-DSCION_CUDA=OFF), or set
# CPACK_DEBIAN_PACKAGE_SHLIBDEPS=OFF and CPACK_DEBIAN_PACKAGE_DEPENDS by hand.
set(CPACK_PACKAGE_NAME scion)
set(CPACK_PACKAGE_VENDOR "Scion")
set(CPACK_PACKAGE_CONTACT "Scion maintainers <scion@localhost>" CACHE STRING "Maintainer field of the Debian package")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Pre-train language models by reusing knowledge that already exists")
set(CPACK_PACKAGE_DESCRIPTION
    "Scion runs TOML graphs of plugins (models, tokenizers, data, losses, growth and knowledge\n inheritance operators) on its own tensor runtime. The package holds the scion command,\n libscion_core, the in-tree plugins, the bundled vocabularies, corpora and graphs, and the\n SDK (headers, CMake package, an example plugin) for building plugins.")
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)  # scion_<version>_<arch>.deb
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "cmake, g++, libboost-dev, nlohmann-json3-dev")
# libscion_core is the package's own library: dpkg-shlibdeps finds it through the plugins'
# and scion's $ORIGIN RUNPATHs, and so does not look for a package providing it.
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)
if(SCION_HAVE_CUDA)
  message(STATUS "Scion: cpack -G DEB wants a CPU build (-DSCION_CUDA=OFF): no Debian package provides NVIDIA's libraries")
endif()
include(CPack)
