#!/usr/bin/env bash
# Installs the dependencies, builds Scion and runs the main job: a small GPT pre-trained on
# the bundled five-domain corpus (graphs/gpt_pretrain.toml). Extra arguments go to
# `scion run` (e.g. --set stages.0.steps=50).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
BUILD_DIR="${SCION_BUILD_DIR:-build}"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build "$BUILD_DIR" -j "$(nproc)" --target scion scion_lm scion_growth scion_inherit scion_optim
"$BUILD_DIR/bin/scion" run graphs/gpt_pretrain.toml "$@"
