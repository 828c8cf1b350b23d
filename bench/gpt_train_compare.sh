#!/usr/bin/env bash
# Scion vs PyTorch (CPU), same GPT and batch, same thread count, f32 and bf16, one after the
# other in one run, REPS interleaved repetitions (the medians are what docs/benchmarks.md
# quotes). Scion bf16 is `precision = "bf16"` (bf16 GEMM inputs, f32 accumulation);
# PyTorch bf16 is torch.autocast("cpu", dtype=torch.bfloat16).
# Scion prints its GEMM-bound ceiling (the step's matrix products on the model's shapes, timed
# alone in the same run), the fraction of it reached and the peak RSS of training; with the
# fused LM head + cross-entropy (the default) and unfused (the logits stored), for the memory.
# Usage: [FAMILY=llama] bench/gpt_train_compare.sh [THREADS] [BUILD_DIR] [REPS]
# FAMILY=llama: the Llama of the same size (RMSNorm, SwiGLU, rotary, 2 key/value heads).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS="${1:-$(nproc)}"
BUILD="${2:-build}"
REPS="${3:-1}"
FAMILY="${FAMILY:-gpt2}"
cmake --build "$BUILD" --target bench_gpt_train >/dev/null
for _ in $(seq "$REPS"); do
  "$BUILD/bin/bench_gpt_train" --threads "$THREADS" --steps 10 --family "$FAMILY"
  "$BUILD/bin/bench_gpt_train" --threads "$THREADS" --steps 10 --family "$FAMILY" --precision bf16
  "$BUILD/bin/bench_gpt_train" --threads "$THREADS" --steps 10 --family "$FAMILY" --head unfused
  "$BUILD/bin/bench_gpt_train" --threads "$THREADS" --steps 10 --family "$FAMILY" --precision bf16 --head unfused
  /usr/bin/python3 bench/torch_gpt_train.py --threads "$THREADS" --steps 10 --family "$FAMILY"
  /usr/bin/python3 bench/torch_gpt_train.py --threads "$THREADS" --steps 10 --family "$FAMILY" --bf16
done
