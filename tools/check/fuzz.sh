#!/bin/sh
# make fuzz: builds every fuzz/fuzz_NAME.c with clang -fsanitize=fuzzer,address,undefined and runs it
# for FUZZ_SECONDS (default 60) on its seed corpus fuzz/corpus/NAME (read only; new inputs go to
# build/fuzz-check/corpus-NAME). Crash, leak and timeout inputs are written to fuzz/ (git-ignored).
# A target is linked with the sources named on a "fuzz-sources: src/a.c src/b.c" line in it, else with
# src/NAME.c when that exists, else with every src/*.c (plus Lua and libcurl); a "fuzz-libs: -lx" line
# adds libraries.
# Prints one "check: fuzz_NAME passed|failed" line per target; exits non-zero when any failed.
#   sh tools/check/fuzz.sh [seconds]
set -eu
. "$(dirname "$0")/lib.sh"
cd "$ROOT"
secs=${1:-${FUZZ_SECONDS:-60}}
cc=${FUZZ_CC:-clang}
out=$ROOT/build/fuzz-check
mkdir -p "$out"
lua_inc=${LUA_INC:--I/usr/include/lua5.4}
curl_cflags=$(pkg-config --cflags libcurl 2>/dev/null || true)
curl_libs=$(pkg-config --libs libcurl 2>/dev/null || echo -lcurl)

targets=$(ls fuzz/fuzz_*.c 2>/dev/null || true)
if [ -z "$targets" ]; then result fuzz failed "no fuzz/fuzz_*.c targets"; exit 1; fi
status=0
for f in $targets; do
  name=$(basename "$f" .c); short=${name#fuzz_}
  srcs=$(sed -n 's/.*fuzz-sources:[[:space:]]*\([^*]*\).*/\1/p' "$f" | head -n 1)
  libs=$(sed -n 's/.*fuzz-libs:[[:space:]]*\([^*]*\).*/\1/p' "$f" | head -n 1)
  if [ -z "$srcs" ]; then
    if [ -f "src/$short.c" ]; then srcs="src/$short.c"; else srcs=$(ls src/*.c); libs="-llua5.4 $curl_libs -lm -ldl"; fi
  fi
  exe=$out/$name
  # shellcheck disable=SC2086
  if ! $cc -g -O1 -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
      -Isrc $lua_inc $curl_cflags -o "$exe" "$f" $srcs $libs >"$exe.build.log" 2>&1; then
    cat "$exe.build.log" >&2
    result "$name" failed "build"; status=1; continue
  fi
  work=$out/corpus-$short
  mkdir -p "$work"
  seeds=
  [ -d "fuzz/corpus/$short" ] && seeds="fuzz/corpus/$short"
  dict=
  [ -f "fuzz/$short.dict" ] && dict="-dict=fuzz/$short.dict"
  say "== fuzz $name for ${secs}s (seeds: ${seeds:-none}; log $exe.log)"
  # shellcheck disable=SC2086
  if ASAN_SYMBOLIZER_PATH="$(symbolizer)" timeout -k 10 $((secs + 120)) "$exe" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=16384 \
      -print_final_stats=1 -artifact_prefix="$ROOT/fuzz/" $dict "$work" $seeds >"$exe.log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$exe.log" | tail -n 1)
    cov=$(grep -a -o 'cov: [0-9]*' "$exe.log" | tail -n 1)
    result "$name" passed "${runs:-?} runs, ${cov:-cov ?}, corpus $(ls "$work" | wc -l) files"
  else
    grep -a -E -A25 'ERROR:|runtime error|deadly signal|Test unit written' "$exe.log" | head -n 80
    result "$name" failed "see $exe.log; reproduce: $exe fuzz/<crash-file>"
    status=1
  fi
done
exit $status
