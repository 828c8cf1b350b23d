#!/usr/bin/env bash
# Builds and tests Scion (CUDA backend included) on a GPU machine that has CUDA, CMake and ninja
# but none of Scion's Debian libraries and no network.
#
#   scripts/device-build.sh fetch      # HERE (Debian bookworm, network): download the .debs
#   scripts/device-build.sh build      # THERE: unpack, configure with -DSCION_CUDA=ON, build, ctest
#
# and the two halves of `build`, usable on their own (e.g. to check the recipe without a GPU):
#   scripts/device-build.sh unpack     # dpkg-deb -x every .deb into the private prefix
#   scripts/device-build.sh configure  # cmake against the prefix; fails unless every package
#                                      # was found inside it
#
# The .debs go to .deps/debs (git-ignored, so name `.deps/debs` in the device tool's `carry`);
# they are unpacked into a private prefix, .deps/root by default, and NEVER into /: the device
# image's own libc, compiler and CUDA stay untouched. Nothing runs a package's maintainer scripts,
# so the update-alternatives links that OpenBLAS would normally get are replaced by direct paths.
#
# Environment: SCION_DEPS_ROOT (prefix, default .deps/root), SCION_BUILD_DIR (default build-gpu),
# SCION_CUDA (ON for build, default ON), JOBS (default: nproc), CTEST_ARGS (extra ctest flags),
# SCION_CMAKE_ARGS (extra configure flags, e.g. -DSCION_CUDA_ARCHS=90-real; scripts/device-check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
DEBS="$REPO/.deps/debs"
ROOT="${SCION_DEPS_ROOT:-$REPO/.deps/root}"
BUILD_DIR="${SCION_BUILD_DIR:-build-gpu}"
JOBS="${JOBS:-$(nproc)}"
ARCH_TRIPLET=x86_64-linux-gnu

# What the build needs beyond a C++ toolchain, CMake, ninja and CUDA: the direct packages and the
# shared libraries they pull in (from `apt-cache depends --recurse`), minus what any Linux
# toolchain image already has (libc, libstdc++, libgcc, the kernel headers, ssl/krb5/tirpc from
# libc6-dev's side) and minus the OpenBLAS flavours that are not used (openmp, serial).
PACKAGES=(
  libtbb-dev libtbb12 libtbbmalloc2 libtbbbind-2-5 libhwloc15 libudev1
  libboost1.74-dev
  libboost-program-options1.74-dev libboost-program-options1.74.0
  libboost-filesystem1.74-dev libboost-filesystem1.74.0
  libboost-system1.74-dev libboost-system1.74.0
  libtomlplusplus-dev libtomlplusplus3
  libgtest-dev libgmock-dev
  libopenblas-dev libopenblas0 libopenblas0-pthread libopenblas-pthread-dev libgfortran5 libquadmath0
  libfaiss-dev
  libdnnl-dev libdnnl2
  nlohmann-json3-dev
  # OpenMPI (core/dist: CPU ranks, and NCCL's bootstrap) with the libraries its transports load
  libopenmpi-dev libopenmpi3 openmpi-bin openmpi-common libpmix2 libevent-2.1-7 libevent-core-2.1-7
  libevent-pthreads-2.1-7 libhwloc-plugins libfabric1 libucx0 libpsm2-2 libpsm-infinipath1 libibverbs1
  librdmacm1 libnl-3-200 libnl-route-3-200 libnuma1 libmunge2 libpciaccess0 libxml2 libicu72 libltdl7
)

fetch() {
  command -v apt-get >/dev/null || { echo "fetch needs apt-get (a Debian bookworm machine)" >&2; exit 1; }
  mkdir -p "$DEBS"
  # apt-get download resolves exact versions from this machine's package lists; it writes into
  # the current directory and needs no root.
  (cd "$DEBS" && apt-get download "${PACKAGES[@]}")
  # Record what was fetched, so a build on the device can say which versions it used.
  (cd "$DEBS" && for f in *.deb; do dpkg-deb -f "$f" Package Version | paste -sd' '; done) > "$DEBS/MANIFEST"
  echo "fetched $(ls "$DEBS"/*.deb | wc -l) packages, $(du -sh "$DEBS" | cut -f1) into $DEBS"
  echo "carry '.deps/debs' in the device tool's run call, then: scripts/device-build.sh build"
}

unpack() {
  ls "$DEBS"/*.deb >/dev/null 2>&1 || { echo "no .debs in $DEBS: run 'scripts/device-build.sh fetch' first" >&2; exit 1; }
  case "$ROOT" in /|/usr|/usr/*) echo "refusing to unpack into $ROOT" >&2; exit 1 ;; esac
  mkdir -p "$ROOT"
  for f in "$DEBS"/*.deb; do dpkg-deb -x "$f" "$ROOT"; done
  # Absolute symlinks inside packages point at /usr/...: re-point them into the prefix.
  while IFS= read -r link; do
    target=$(readlink "$link")
    case "$target" in /*) ln -sfn "$ROOT$target" "$link" ;; esac
  done < <(find "$ROOT" -type l)
  local lib="$ROOT/usr/lib/$ARCH_TRIPLET"
  # OpenBLAS: the generic names (libblas.so, cblas.h) are update-alternatives links made by
  # maintainer scripts that never ran; point them at the pthread flavour directly.
  ln -sfn openblas-pthread/libopenblas.so "$lib/libopenblas.so"
  ln -sfn openblas-pthread/libblas.so "$lib/libblas.so"
  ln -sfn openblas-pthread/libopenblas.so.0 "$lib/libopenblas.so.0"
  echo "unpacked $(ls "$DEBS"/*.deb | wc -l) packages into $ROOT"
}

# The paths every step needs to see the prefix.
prefix_env() {
  local lib="$ROOT/usr/lib/$ARCH_TRIPLET"
  export LD_LIBRARY_PATH="$lib:$lib/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export CMAKE_PREFIX_PATH="$ROOT/usr${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}"
  # OpenMPI was built for /usr: OPAL_PREFIX moves its wrappers, help files and components to
  # the prefix; its update-alternatives names (mpicc, mpirun) were never made, so the
  # .openmpi binaries are named directly (configure).
  export OPAL_PREFIX="$ROOT/usr"
  export PATH="$ROOT/usr/bin:$PATH"
}

configure() {
  local cuda="${1:-${SCION_CUDA:-ON}}"
  prefix_env
  local lib="$ROOT/usr/lib/$ARCH_TRIPLET"
  # CMAKE_PREFIX_PATH is searched before the system paths, so packages resolve into the prefix
  # even on a machine that also has them in /usr (this one, when the recipe is checked here).
  # The library and include paths cover what is found without a config file (OpenBLAS, cblas.h).
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DSCION_CUDA="$cuda" \
    -DCMAKE_PREFIX_PATH="$ROOT/usr" \
    -DCMAKE_LIBRARY_PATH="$lib;$lib/openblas-pthread" \
    -DCMAKE_INCLUDE_PATH="$ROOT/usr/include;$ROOT/usr/include/$ARCH_TRIPLET/openblas-pthread" \
    -DBoost_NO_SYSTEM_PATHS=ON -DBoost_ROOT="$ROOT/usr" \
    -DMPI_C_COMPILER="$ROOT/usr/bin/mpicc.openmpi" -DMPIEXEC_EXECUTABLE="$ROOT/usr/bin/mpirun.openmpi" \
    -DCMAKE_BUILD_RPATH="$lib;$lib/openblas-pthread" ${SCION_CMAKE_ARGS:-}
  verify_prefix
}

# Fails unless each dependency was found inside the prefix (not in the system's /usr).
verify_prefix() {
  local cache="$BUILD_DIR/CMakeCache.txt" bad=0
  for var in TBB_DIR Boost_DIR boost_program_options_DIR boost_filesystem_DIR tomlplusplus_DIR GTest_DIR \
             BLAS_openblas_LIBRARY CBLAS_INCLUDE_DIR MPI_mpi_LIBRARY MPIEXEC_EXECUTABLE FAISS_LIBRARY; do
    local val
    val=$(grep -E "^$var:[A-Z]+=" "$cache" | head -1 | cut -d= -f2- || true)
    if [ -z "$val" ]; then
      echo "  $var: (not in the cache)"
    elif [[ "$val" == "$ROOT"* ]]; then
      echo "  $var = $val"
    else
      echo "  $var = $val   <-- OUTSIDE the prefix" >&2
      bad=1
    fi
  done
  [ "$bad" = 0 ] || { echo "some dependencies were not taken from $ROOT" >&2; exit 1; }
  echo "every dependency found in $ROOT"
}

build() {
  # The Debian bookworm libraries need glibc >= 2.36 at run time.
  local glibc
  glibc=$(ldd --version 2>/dev/null | head -1 | grep -oE '[0-9]+\.[0-9]+$' || echo unknown)
  echo "glibc on this machine: $glibc (the unpacked bookworm libraries were built against 2.36)"
  command -v nvcc >/dev/null || export PATH="/usr/local/cuda/bin:$PATH"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null || true
  [ -d "$ROOT/usr" ] || unpack
  configure "${SCION_CUDA:-ON}"
  prefix_env
  cmake --build "$BUILD_DIR" -j "$JOBS"
  # --output-on-failure so a failing case is readable in the device tool's output tail.
  ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$JOBS" ${CTEST_ARGS:-}
}

case "${1:-}" in
  fetch) fetch ;;
  unpack) unpack ;;
  configure) shift; configure "$@" ;;
  build) build ;;
  *) sed -n '2,25p' "$0"; exit 2 ;;
esac
