#!/usr/bin/env bash
# Scion vs PyTorch (CPU), same GPT and batch, same thread count, one after the other in one run.
# Usage: bench/gpt_train_compare.sh [THREADS] [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${1:-$(nproc)}"
BUILD="${2:-build}"
cmake --build "$BUILD" --target bench_gpt_train >/dev/null
"$BUILD/bin/bench_gpt_train" --threads "$THREADS" --steps 10
/usr/bin/python3 bench/torch_gpt_train.py --threads "$THREADS" --steps 10
