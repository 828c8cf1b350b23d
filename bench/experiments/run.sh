#!/usr/bin/env bash
# The knowledge-inheritance and growth experiments on the bundled corpus (CPU, ~15 minutes on
# 2 cores). Results go to runs/exp-*; the comparison is printed and a report written.
set -euo pipefail
cd "$(dirname "$0")/../.."
S="${SCION:-build/bin/scion}"  # the scion executable (SCION=... to use another build)
$S run bench/experiments/ki_teacher.toml --plain > /dev/null
$S run bench/experiments/ki_student.toml --plain --set 'stages.0.losses=["lm"]' --out runs/exp-scratch > /dev/null
$S run bench/experiments/ki_student.toml --plain --out runs/exp-ki > /dev/null
$S run bench/experiments/grow_gpt.toml --plain > /dev/null
$S run bench/experiments/grow_gpt_two_stage.toml --plain > /dev/null
$S run bench/experiments/grow_msg.toml --plain > /dev/null
/usr/bin/python3 bench/experiments/compare.py runs/exp-scratch runs/exp-ki runs/exp-grow runs/exp-grow2 runs/exp-msg
$S report runs/exp-scratch runs/exp-ki runs/exp-grow runs/exp-grow2 runs/exp-msg runs/exp-teacher --out runs/exp-report.html
