#!/usr/bin/env bash
# mpirun with the grace time a preempted run needs for its stop checkpoint (docs/distributed.md,
# "Preemption under mpirun"). OpenMPI 4.1's mpirun answers SIGTERM with SIGCONT to the ranks,
# odls_base_sigkill_timeout seconds of waiting, SIGTERM, as long again, then SIGKILL; its
# default of 1 s leaves the ranks one second for the update in progress and the checkpoint.
#   SCION_STOP_GRACE_S (default 30): that timeout; keep twice it below the scheduler's grace
#   MPIRUN (default mpirun): the launcher
#   scripts/mpirun.sh -np 2 build/bin/scion run graphs/gpt_pretrain.toml
set -euo pipefail
exec "${MPIRUN:-mpirun}" --mca odls_base_sigkill_timeout "${SCION_STOP_GRACE_S:-30}" "$@"
