#!/bin/sh
# Adds up the "check: NAME passed" / "check: NAME failed" lines of `make check` / `make fuzz` output.
#   sh tools/check/counts.sh LOG...    (or stdin)  ->  "P F" on one line (passed, failed)
# For tools/run-tests.sh:  set -- $(sh tools/check/counts.sh "$log"); passed=$((passed + $1)); failed=...
set -eu
cat "$@" | awk '/^check: [^ ]+ passed/ { p++ } /^check: [^ ]+ failed/ { f++ } END { printf "%d %d\n", p, f }'
