#!/usr/bin/env bash
# The one-shot GPU check of issue 16, for a machine with a CUDA GPU, CUDA, CMake and ninja, and
# Scion's libraries carried as .debs (scripts/device-build.sh fetch, here; carry ".deps/debs"):
#
#   scripts/device-check.sh             # on the GPU machine: everything below, under 8 minutes
#   scripts/device-check.sh --rehearse  # anywhere without a GPU: every step that can run
#
#  0. the device: name, SM count, clock, compute capability -> peak dense bf16 FLOP/s, computed
#     from those properties (scripts/cuda_peak.cu), not from a table of products;
#  1. build: unpack the .debs into a private prefix, configure with the CUDA backend for this
#     device's architecture only, build the targets the check needs (library, op tests, bench);
#  2. the CUDA op tests: every row of tests/ops/test_op_devices.cpp on cuda (f32 and bf16),
#     the two-device errors, cuda_linkage, cuda_launch_test;
#  3. a short GPT training on the GPU beside the CPU (same model, initialisation, batches):
#     the GPU's loss must follow the CPU's (max relative difference per step printed, < 1%);
#  4. the GPT-2 124M benchmark (12 layers, width 768, 12 heads, context 1024, vocab 50304,
#     bf16 GEMMs): bench_gpt_train --device cuda -> tokens/s and MFU, where
#     MFU = tokens/s x (6N + 6*L*C*T) / peak;
#  5. the same model and batch in PyTorch (bench/torch_gpt_train.py --device cuda --bf16 --compile
#     --sdpa), when the machine's python3 has a CUDA PyTorch; else it says so;
#  6. a summary with what docs/benchmarks.md needs (device, date, commit, commands, figures).
#
# Environment: SCION_BUILD_DIR (default build-gpu), SCION_DEPS_ROOT (default .deps/root),
# BATCH (default 16), STEPS (default 10), JOBS (default nproc), OUT (a folder: logs are copied
# there too). Every step has its own time limit, so a hang cannot eat the device time.
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
REHEARSE=0
[ "${1:-}" = "--rehearse" ] && REHEARSE=1
BUILD_DIR="${SCION_BUILD_DIR:-build-gpu}"
BATCH="${BATCH:-16}"
STEPS="${STEPS:-10}"
JOBS="${JOBS:-$(nproc)}"
LOG="${OUT:-/tmp}/device-check"
mkdir -p "$LOG"
T0=$(date +%s)
# One deadline for the whole check (the device tool's command limit is 600 s): each step's own
# limit is cut to what is left of BUDGET seconds, and a step with under 10 s left is skipped.
BUDGET="${BUDGET:-470}"
[ "${1:-}" = "--rehearse" ] && BUDGET="${BUDGET_REHEARSE:-900}"
lim() {  # min(step limit, seconds left), at least 1 (timeout 0 would mean no limit)
  local left=$(( T0 + BUDGET - $(date +%s) ))
  [ "$left" -lt 1 ] && left=1
  [ "$left" -lt "$1" ] && echo "$left" || echo "$1"
}
enough() { [ "$(lim 10)" -ge 10 ] || { say "$1: SKIPPED (the ${BUDGET}s budget is spent)"; return 1; }; }
export PATH="/usr/local/cuda/bin:$PATH"
SUMMARY=()
note() { echo "== [$(( $(date +%s) - T0 ))s] $*"; }
say() { SUMMARY+=("$*"); echo "   $*"; }

# ---- 0. the device ------------------------------------------------------------------------
note "0. device"
PEAK=0
CC=""
if nvcc -O2 -o /tmp/scion_cuda_peak scripts/cuda_peak.cu >"$LOG/peak_build.log" 2>&1; then
  /tmp/scion_cuda_peak >"$LOG/peak.txt" 2>&1
  cat "$LOG/peak.txt"
  PEAK=$(sed -n 's/^device peak_bf16_flops=//p' "$LOG/peak.txt")
  CC=$(sed -n 's/.* cc=\([0-9]*\)\.\([0-9]*\) .*/\1\2/p' "$LOG/peak.txt")
  DEVNAME=$(sed -n 's/^device name=//p' "$LOG/peak.txt")
  say "device: ${DEVNAME:-none} $(sed -n 's/^device \(sm_count=.*\)/\1/p' "$LOG/peak.txt") peak_bf16=${PEAK:-0}"
else
  say "device: the probe did not compile (nvcc missing?): $(tail -1 "$LOG/peak_build.log")"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader 2>/dev/null || true
if [ "$REHEARSE" = 0 ] && [ -z "$CC" ]; then
  echo "no CUDA device found: run with --rehearse on a machine without a GPU" >&2
  exit 1
fi
if [ "$REHEARSE" = 1 ] && ! awk "BEGIN{exit !(${PEAK:-0} > 0)}"; then
  PEAK=1e12
  say "rehearse: no device, so a stand-in peak of 1e12 FLOP/s exercises the MFU arithmetic (not a device figure)"
fi

# ---- 1. build --------------------------------------------------------------------------------
note "1. build"
if [ "$REHEARSE" = 1 ]; then
  # Here: fetch the .debs when absent, unpack into a temporary prefix, configure a temporary
  # build dir with the CUDA backend, and check every dependency came from the prefix. The build
  # itself is left to the GPU machine (16 cores there; this one has 2).
  [ -d .deps/debs ] && ls .deps/debs/*.deb >/dev/null 2>&1 || timeout 300 scripts/device-build.sh fetch
  RROOT=$(mktemp -d /tmp/scion-rehearse-root.XXXXXX)
  RBUILD=$(mktemp -d /tmp/scion-rehearse-build.XXXXXX)
  SCION_DEPS_ROOT="$RROOT" timeout 300 scripts/device-build.sh unpack >"$LOG/unpack.log" 2>&1 &&
    say "rehearse: unpack ok ($(tail -1 "$LOG/unpack.log"))" || say "rehearse: unpack FAILED (see $LOG/unpack.log)"
  SCION_DEPS_ROOT="$RROOT" SCION_BUILD_DIR="$RBUILD" SCION_CMAKE_ARGS="-DSCION_CUDA_ARCHS=90-real" \
    timeout 300 scripts/device-build.sh configure ON >"$LOG/configure.log" 2>&1 &&
    say "rehearse: configure ok with the CUDA backend, SCION_CUDA_ARCHS=90-real ($(tail -1 "$LOG/configure.log"))" ||
    say "rehearse: configure FAILED (see $LOG/configure.log)"
  grep -q "Scion: CUDA backend ON" "$LOG/configure.log" && say "rehearse: configure found nvcc (CUDA backend ON)"
  rm -rf "$RROOT" "$RBUILD"
  # The remaining steps run the CPU paths of the same commands, from an existing local build.
  BUILD_DIR="${SCION_REHEARSE_BUILD:-build}"
else
  ARCH="${CC}-real"
  SCION_BUILD_DIR="$BUILD_DIR" SCION_CMAKE_ARGS="-DSCION_CUDA_ARCHS=$ARCH" \
    timeout "$(lim 90)" scripts/device-build.sh configure ON >"$LOG/configure.log" 2>&1 ||
    { tail -30 "$LOG/configure.log"; echo "configure failed" >&2; exit 1; }
  export LD_LIBRARY_PATH="$REPO/.deps/root/usr/lib/x86_64-linux-gnu:$REPO/.deps/root/usr/lib/x86_64-linux-gnu/openblas-pthread${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export OPAL_PREFIX="$REPO/.deps/root/usr"
  if ! timeout "$(lim 240)" cmake --build "$BUILD_DIR" -j "$JOBS" --target scion_core test_op_devices test_op_errors \
      bench_gpt_train cuda_launch_test >"$LOG/build.log" 2>&1; then
    grep -E "error|FAILED" -A3 "$LOG/build.log" | head -40
    echo "build failed" >&2
    exit 1
  fi
  say "build: ok for sm_$CC in $(( $(date +%s) - T0 ))s since the start"
fi
BIN="$BUILD_DIR/bin"
[ -x "$BIN/bench_gpt_train" ] || { echo "no $BIN/bench_gpt_train (build it first)" >&2; exit 1; }

# ---- 2. the CUDA op tests --------------------------------------------------------------------
note "2. op tests"
if [ "$REHEARSE" = 1 ]; then
  timeout 300 ctest --test-dir "$BUILD_DIR" -R 'OpDevices|OpErrors.InputsOnTwoDevices|cuda_' -j 2 >"$LOG/ctest.log" 2>&1
else
  timeout "$(lim 90)" ctest --test-dir "$BUILD_DIR" -R 'OpDevices|OpErrors|cuda_' -j "$JOBS" --output-on-failure \
    >"$LOG/ctest.log" 2>&1
fi
CT_RC=$?
grep -E "tests passed|tests failed" "$LOG/ctest.log" | tail -1
NSKIP=$(grep -c "(Skipped)" "$LOG/ctest.log" || true)
say "op tests: rc=$CT_RC, $(grep -E 'tests passed' "$LOG/ctest.log" | tail -1), $NSKIP skipped"
[ "$CT_RC" = 0 ] || grep -E "\(Failed\)|\*\*\*Failed" "$LOG/ctest.log" | head -20

# ---- 3. a short GPT training, GPU beside CPU ---------------------------------------------------
note "3. loss curve: cuda vs cpu"
SMALL="--layers 2 --width 128 --heads 4 --context 64 --batch 4 --vocab 512 --steps 20 --print-losses 1"
timeout "$(lim 40)" "$BIN/bench_gpt_train" $SMALL --device cpu --threads 4 >"$LOG/curve_cpu.txt" 2>&1
GPUDEV=cuda
[ "$REHEARSE" = 1 ] && GPUDEV=cpu  # rehearsal: the comparator itself, on two CPU runs
timeout "$(lim 40)" "$BIN/bench_gpt_train" $SMALL --device "$GPUDEV" --threads 4 >"$LOG/curve_gpu.txt" 2>&1
CURVE=$(paste <(sed -n 's/^scion  loss step=\([0-9]*\) value=\(.*\)/\1 \2/p' "$LOG/curve_cpu.txt") \
              <(sed -n 's/^scion  loss step=\([0-9]*\) value=\(.*\)/\2/p' "$LOG/curve_gpu.txt") |
  awk '{d = $2 - $3; if (d < 0) d = -d; r = d / ($2 > 0 ? $2 : 1); if (r > m) m = r; n++;
        printf "     step %2d cpu %.5f %s %.5f\n", $1, $2, dev, $3} END {printf "MAX %.3e %d\n", m, n}' dev="$GPUDEV")
echo "$CURVE" | grep -v '^MAX'
MAXREL=$(echo "$CURVE" | sed -n 's/^MAX \([^ ]*\) \([0-9]*\)/\1/p')
NSTEPS=$(echo "$CURVE" | sed -n 's/^MAX \([^ ]*\) \([0-9]*\)/\2/p')
if [ "${NSTEPS:-0}" -gt 0 ] && awk "BEGIN{exit !($MAXREL < 0.01)}"; then
  say "loss curve: $GPUDEV follows cpu over $NSTEPS steps, max relative difference $MAXREL (< 1%)"
else
  say "loss curve: FAILED ($GPUDEV vs cpu over ${NSTEPS:-0} steps, max relative difference ${MAXREL:-n/a})"
  tail -5 "$LOG/curve_gpu.txt"
fi

# ---- 4. GPT-2 124M, Scion ---------------------------------------------------------------------
note "4. GPT-2 124M benchmark (Scion)"
if [ "$REHEARSE" = 1 ]; then
  GPT2="--layers 2 --width 64 --heads 2 --context 64 --vocab 512"  # tiny: exercises the parsing
  BDEV=cpu
  RBATCH=2
  RSTEPS=2
else
  GPT2="--layers 12 --width 768 --heads 12 --context 1024 --vocab 50304"
  BDEV=cuda
  RBATCH=$BATCH
  RSTEPS=$STEPS
fi
SCION_CMD="$BIN/bench_gpt_train $GPT2 --batch $RBATCH --steps $RSTEPS --precision bf16 --device $BDEV"
enough "scion" && timeout "$(lim 120)" $SCION_CMD >"$LOG/scion_gpt2.txt" 2>&1
S_RC=$?
cat "$LOG/scion_gpt2.txt" | grep -v "backward by op" | head -6
S_TPS=$(sed -n 's/.*tokens\/s=\([0-9.]*\).*/\1/p' "$LOG/scion_gpt2.txt" | head -1)
S_FPT=$(sed -n 's/.*flops_per_token=\([0-9.]*\).*/\1/p' "$LOG/scion_gpt2.txt" | head -1)
S_MFU=n/a
if [ -n "$S_TPS" ] && [ -n "$S_FPT" ] && awk "BEGIN{exit !(${PEAK:-0} > 0)}"; then
  S_MFU=$(awk "BEGIN{printf \"%.1f%%\", 100 * $S_TPS * $S_FPT / $PEAK}")
fi
say "scion: rc=$S_RC tokens/s=${S_TPS:-n/a} flops/token=${S_FPT:-n/a} MFU=$S_MFU  ($SCION_CMD)"

# ---- 5. the same in PyTorch --------------------------------------------------------------------
note "5. GPT-2 124M benchmark (PyTorch)"
PY=python3
[ "$REHEARSE" = 1 ] && PY=/usr/bin/python3
TDEV=cuda
TORCH_FLAGS="--device cuda --bf16 --compile --sdpa --warmup 3"
if [ "$REHEARSE" = 1 ]; then
  TDEV=cpu
  TORCH_FLAGS="--device cpu --bf16 --compile --sdpa --warmup 1 --threads 2"
fi
if $PY -c "import torch, sys; sys.exit(0 if '$TDEV' == 'cpu' or torch.cuda.is_available() else 1)" 2>/dev/null; then
  TORCH_CMD="$PY bench/torch_gpt_train.py $GPT2 --batch $RBATCH --steps $RSTEPS $TORCH_FLAGS --peak-flops ${PEAK:-0}"
  enough "torch" && timeout "$(lim 200)" $TORCH_CMD >"$LOG/torch_gpt2.txt" 2>&1
  T_RC=$?
  cat "$LOG/torch_gpt2.txt" | tail -4
  T_TPS=$(sed -n 's/.*tokens\/s=\([0-9.]*\).*/\1/p' "$LOG/torch_gpt2.txt" | head -1)
  T_MFU=$(sed -n 's/.*MFU=\([0-9.]*%\).*/\1/p' "$LOG/torch_gpt2.txt" | head -1)
  say "torch: rc=$T_RC tokens/s=${T_TPS:-n/a} MFU=${T_MFU:-n/a}  ($TORCH_CMD)"
  grep "note:" "$LOG/torch_gpt2.txt" | sed 's/^/   /'
else
  say "torch: NOT RUN: this machine's $PY has no PyTorch with CUDA (carry wheels, see docs/benchmarks.md)"
fi

# ---- 6. summary ---------------------------------------------------------------------------------
note "6. summary (for docs/benchmarks.md)"
echo "---- device-check $( [ "$REHEARSE" = 1 ] && echo 'REHEARSAL (no GPU: CPU paths only; no figure here is a GPU figure)')"
echo "date: $(date -u +%Y-%m-%dT%H:%MZ)  commit: $(git rev-parse --short HEAD 2>/dev/null)  elapsed: $(( $(date +%s) - T0 ))s"
for l in "${SUMMARY[@]}"; do echo "$l"; done
if [ "$REHEARSE" = 0 ]; then
  echo
  echo "| device | batch x ctx | Scion tokens/s | Scion MFU | PyTorch+compile tokens/s | PyTorch MFU |"
  echo "| --- | --- | --- | --- | --- | --- |"
  echo "| ${DEVNAME:-?} | $RBATCH x 1024 | ${S_TPS:-n/a} | $S_MFU | ${T_TPS:-n/a} | ${T_MFU:-n/a} |"
fi
[ -n "${OUT:-}" ] && { for l in "${SUMMARY[@]}"; do echo "$l"; done >"$LOG/summary.txt"; }
exit 0
