#!/usr/bin/env bash
# Installs everything Scion needs to build and test, from Debian's packages.
# Idempotent: packages already present are skipped by apt-get.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
PKGS=(
  build-essential cmake ninja-build pkg-config
  libtbb-dev
  libboost1.74-dev libboost-program-options-dev libboost-filesystem-dev
  libtomlplusplus-dev
  libgtest-dev libgmock-dev
  libopenblas-dev
  libopenmpi-dev openmpi-bin
)
# The PyTorch reference (twin tests, benchmarks) is optional: SCION_WITH_TORCH=1 adds it.
if [ "${SCION_WITH_TORCH:-0}" = 1 ]; then PKGS+=(python3-torch python3-numpy); fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
