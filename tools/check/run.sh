#!/bin/sh
# make check: runs the steps in order (default: asan valgrind stress threads), each ending with a line
# "check: NAME passed|failed"; keeps going after a failure, then prints the totals and the time per step.
# Exits non-zero when any step failed. Logs: build/check/.
#   sh tools/check/run.sh [step...]
set -u
here=$(cd "$(dirname "$0")" && pwd)
steps=${*:-asan valgrind stress threads}
failed=0
times=
start_all=$(date +%s)
for s in $steps; do
  if [ ! -f "$here/$s.sh" ]; then echo "check: $s failed (no such step: tools/check/$s.sh)"; failed=1; continue; fi
  t0=$(date +%s)
  sh "$here/$s.sh" || failed=1
  times="$times $s $(( $(date +%s) - t0 ))s;"
done
echo "check: time${times} total $(( $(date +%s) - start_all ))s"
exit $failed
