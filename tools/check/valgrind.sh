#!/bin/sh
# make check, step "valgrind": the whole busted suite in one Lua 5.4 process under valgrind memcheck,
# against gemini.core built with -O1 -g (build/valgrind). Zero errors and zero definite leaks;
# child processes (the emulator, curl, sh) are not traced (--trace-children=no).
#
# Environment: VALGRIND_TIMEOUT (s, default 3600), CHECK_SPECS (default "spec"), VALGRIND_BUILD
# (default build/valgrind), CHECK_SKIP_BUILD=1, BUSTED_ARGS, VALGRIND_ARGS (extra valgrind options),
# VALGRIND_TRACK_ORIGINS=yes (where uninitialised values come from; about twice as slow),
# VALGRIND_EXCLUDE_TAGS (default "timing": specs tagged #timing measure wall-clock limits that a
# 20-50x slower interpreter cannot meet; they still run natively and under ASan).
set -eu
. "$(dirname "$0")/lib.sh"
name=valgrind
cd "$ROOT"
build=${VALGRIND_BUILD:-build/valgrind}
case $build in /*) abs_build=$build ;; *) abs_build=$ROOT/$build ;; esac

if ! command -v valgrind >/dev/null 2>&1; then result $name failed "valgrind not installed"; exit 1; fi
if [ "${CHECK_SKIP_BUILD:-0}" != 1 ]; then
  if ! have_core_sources; then result $name failed "no src/*.c to build"; exit 1; fi
  if ! build_core "$build" "${CHECK_VG_CC:-cc}" "-O1 -g"; then result $name failed "build failed"; exit 1; fi
fi
bs=$(busted_script) || { result $name failed "busted not found"; exit 1; }

log=$CHECK_DIR/valgrind.log
vlog=$CHECK_DIR/valgrind.memcheck.log
say "== check valgrind: busted ${CHECK_SPECS:-spec} on $LUA under memcheck with $build/gemini/core.so (logs $log, $vlog)"
set +e
# shellcheck disable=SC2086
shim=$CHECK_DIR/check-preload.so   # dlclose() as a no-op (see preload.c): libraries unloaded at lua_close
# would turn the blocks their globals still point to (libldap/libsasl2 init, OpenSSL) into "definitely lost"
if [ ! -f "$shim" ] || [ "$ROOT/tools/check/preload.c" -nt "$shim" ]; then
  cc -O2 -fPIC -shared -o "$shim" "$ROOT/tools/check/preload.c" -ldl
fi
LD_PRELOAD="$shim" LUA_CPATH="$abs_build/?.so;;" timeout -k 10 "${VALGRIND_TIMEOUT:-3600}" \
  valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite --trace-children=no --num-callers=40 --track-origins=${VALGRIND_TRACK_ORIGINS:-no} --keep-debuginfo=yes \
    --suppressions="$ROOT/tools/check/valgrind.supp" --gen-suppressions=all --log-file="$vlog" \
    ${VALGRIND_ARGS:-} \
    "$LUA" "$bs" --ignore-lua --cpath="$abs_build/?.so" -o plainTerminal --exclude-tags="${VALGRIND_EXCLUDE_TAGS:-timing}" \
    ${BUSTED_ARGS:-} ${CHECK_SPECS:-spec} >"$log" 2>&1
rc=$?
set -e
tail -n 30 "$log"
sum=$(busted_summary "$log")
errs=$(sed -n 's/^==[0-9]*== ERROR SUMMARY: \([0-9]*\) errors.*/\1/p' "$vlog" | tail -n 1)
defl=$(sed -n 's/^==[0-9]*==    definitely lost: \([0-9,]*\) bytes.*/\1/p' "$vlog" | tail -n 1 | tr -d ,)
say "valgrind: ERROR SUMMARY ${errs:-?} errors, definitely lost ${defl:-0} bytes"
# Under memcheck the interpreter runs 20-50x slower, so specs that assert wall-clock limits can fail there
# without any memory error; they are judged by the native and ASan runs. This step is judged by valgrind:
# busted must finish (its summary printed, no valgrind error exit), with 0 errors and 0 definite leaks.
# VALGRIND_STRICT_SPECS=1 also requires every spec to pass.
spec_fail=0
if [ -n "$sum" ]; then set -- $sum; spec_fail=$(($2 + $3)); fi
if [ "$rc" -ne 99 ] && [ -n "$sum" ] && [ "${errs:-1}" = 0 ] &&
   { [ "$spec_fail" -eq 0 ] || [ "${VALGRIND_STRICT_SPECS:-0}" != 1 ]; }; then
  set -- $sum
  if [ "$spec_fail" -eq 0 ]; then
    result $name passed "$1 specs, 0 errors, 0 definite leaks"
  else
    say "valgrind: $spec_fail spec(s) failed under valgrind (not memory errors; the native and ASan runs judge specs):"
    grep -a -E "^(Failure|Error) -> " -A1 "$log" | grep -a -v -E "^(Failure|Error) -> |^--\$" | sed "s/^/  /"
    result $name passed "$1 specs passed, $spec_fail failed under valgrind only as specs; 0 errors, 0 definite leaks"
  fi
else
  if [ "$rc" -eq 99 ] || [ "${errs:-0}" != 0 ]; then
    say "valgrind: first reports in $vlog:"
    grep -v -E '^==[0-9]+== *$' "$vlog" | sed -n '/Invalid\|uninitialised\|definitely lost in\|Mismatched\|overlap\|invalid/,+25p' | head -n 150
  fi
  result $name failed "exit $rc, summary '${sum:-none}', ${errs:-?} valgrind errors"
  exit 1
fi
