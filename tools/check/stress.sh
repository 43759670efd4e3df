#!/bin/sh
# make check, step "stress": tools/check/stress.lua (20,000 requests, RSS growth limit) against the
# normal build of gemini.core (make build; build/$LUA). Environment: see stress.lua.
set -eu
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
if [ "${CHECK_SKIP_BUILD:-0}" != 1 ]; then
  if ! make --no-print-directory build LUA="$LUA" >"$CHECK_DIR/build-stress.log" 2>&1; then
    cat "$CHECK_DIR/build-stress.log" >&2; result stress failed "build failed"; exit 1
  fi
fi
LUA_CPATH="${STRESS_CPATH:-$ROOT/build/$LUA/?.so};;"
export LUA_CPATH
say "== check stress: $LUA tools/check/stress.lua (${STRESS_REQUESTS:-20000} requests)"
set +e
timeout -k 10 "$(( ${STRESS_SECONDS:-600} + 60 ))" "$LUA" tools/check/stress.lua >"$CHECK_DIR/stress.log" 2>&1
rc=$?
set -e
cat "$CHECK_DIR/stress.log"
if ! grep -q '^check: stress ' "$CHECK_DIR/stress.log"; then result stress failed "exit $rc, no result line"; exit 1; fi
[ "$rc" -eq 0 ]
