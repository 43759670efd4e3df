#!/bin/sh
# make check, step "asan": the whole busted suite under Lua 5.4 against gemini.core built with
# AddressSanitizer + UndefinedBehaviorSanitizer (clang), the ASan runtime loaded with LD_PRELOAD
# (lua5.4 itself is not instrumented), LeakSanitizer on at exit.
#
# Environment: ASAN_TIMEOUT (s, default 1800), CHECK_SPECS (default "spec"), ASAN_BUILD (default build/asan), CHECK_SKIP_BUILD=1 to use an
# existing build, CHECK_CC (default clang), BUSTED_ARGS (extra busted arguments).
# Child processes inherit the runtime; leak checks run in Lua processes only (see preload.c).
set -eu
. "$(dirname "$0")/lib.sh"
name=asan
cd "$ROOT"
build=${ASAN_BUILD:-build/asan}
case $build in /*) abs_build=$build ;; *) abs_build=$ROOT/$build ;; esac
cc=${CHECK_CC:-clang}
flags="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined"

if [ "${CHECK_SKIP_BUILD:-0}" != 1 ]; then
  if ! have_core_sources; then result $name failed "no src/*.c to build"; exit 1; fi
  if ! build_core "$build" "$cc" "$flags"; then result $name failed "sanitized build failed"; exit 1; fi
fi
rt=$($cc -print-file-name=libclang_rt.asan-x86_64.so)
if [ ! -f "$rt" ]; then
  echo "asan: no ASan runtime at '$rt' (install libclang-rt-14-dev)" >&2
  result $name failed "no ASan runtime"; exit 1
fi
shim=$CHECK_DIR/check-preload.so
if [ ! -f "$shim" ] || [ "$ROOT/tools/check/preload.c" -nt "$shim" ]; then
  cc -O2 -fPIC -shared -o "$shim" "$ROOT/tools/check/preload.c" -ldl
fi
bs=$(busted_script) || { result $name failed "busted not found"; exit 1; }

log=$CHECK_DIR/asan.log
reports=$CHECK_DIR/asan-reports   # one file per process that reported (busted or any child)
rm -rf "$reports"; mkdir -p "$reports"
say "== check asan: busted ${CHECK_SPECS:-spec} on $LUA with $build/gemini/core.so (ASan+UBSan, log $log)"
set +e
# shellcheck disable=SC2086
timeout -k 10 "${ASAN_TIMEOUT:-1800}" env LD_PRELOAD="$rt:$shim" \
    CHECK_PRELOAD_LUA="$rt:$shim" CHECK_PRELOAD_OTHER="$shim" \
    LUA_CPATH="$abs_build/?.so;;" \
    ASAN_OPTIONS="log_path=$reports/asan:detect_leaks=1:abort_on_error=1:halt_on_error=1:detect_stack_use_after_return=1:strict_string_checks=1:check_initialization_order=1:detect_odr_violation=0" \
    LSAN_OPTIONS="suppressions=$ROOT/tools/check/lsan.supp:print_suppressions=0" \
    ASAN_SYMBOLIZER_PATH="$(symbolizer)" \
    UBSAN_OPTIONS="log_path=$reports/ubsan:print_stacktrace=1:halt_on_error=1" \
    "$LUA" "$bs" --ignore-lua --cpath="$abs_build/?.so" -o plainTerminal ${BUSTED_ARGS:-} ${CHECK_SPECS:-spec} >"$log" 2>&1
rc=$?
set -e
tail -n 40 "$log"
sum=$(busted_summary "$log")
nrep=$(ls "$reports" | wc -l)
san=$(cat "$log" "$reports"/* 2>/dev/null | grep -a -c -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' || true)
if [ "$rc" -eq 0 ] && [ -n "$sum" ] && [ "$san" -eq 0 ] && [ "$nrep" -eq 0 ]; then
  set -- $sum
  result $name passed "$1 specs, 0 sanitizer reports"
else
  if [ "$nrep" -ne 0 ]; then
    say "asan: sanitizer reports ($reports):"
    for r in "$reports"/*; do say "--- $r"; head -n 60 "$r"; done
  fi
  result $name failed "exit $rc, summary '${sum:-none}', $nrep report files"
  exit 1
fi
