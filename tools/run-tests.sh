#!/bin/sh
# Runs every test suite of `make test` and ends with one line: "N passed, N failed".
# Usage: sh tools/run-tests.sh [LUA]    (LUA defaults to lua5.4)
set -u
lua=${1:-lua5.4}
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# Adds the counts of one busted run (its summary line) to the totals.
count_busted() {
  line=$(grep -a -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$log" | tail -n 1)
  if [ -z "$line" ]; then
    echo "run-tests: busted printed no summary (crash?)" >&2
    failed=$((failed + 1))
    return
  fi
  s=$(echo "$line" | sed -E 's#^([0-9]+) success.*#\1#')
  f=$(echo "$line" | sed -E 's#^[0-9]+ success(es)? / ([0-9]+) failure.*#\2#')
  e=$(echo "$line" | sed -E 's#.* / ([0-9]+) errors? / .*#\1#')
  passed=$((passed + s))
  failed=$((failed + f + e))
}

echo "== busted on $lua"
busted --lua="$lua" ${BUSTED_ARGS:-} spec 2>&1 | tee "$log"
count_busted

for extra in ${EXTRA_SUITES:-}; do
  echo "== $extra"
  if sh "$extra"; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
