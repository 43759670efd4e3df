#!/bin/sh
# make check, step "threads": tests/threads.c (two OS threads, each with its own lua_State and
# gemini.core client, requesting at once) built with the core sources under AddressSanitizer +
# UndefinedBehaviorSanitizer, and under ThreadSanitizer, run against tools/check/echo_server.lua.
# Skipped (counted as passed, with a note) when tests/threads.c does not exist.
# Environment: THREADS_SANITIZERS (default "address,undefined thread"), CHECK_CC (default clang).
set -eu
. "$(dirname "$0")/lib.sh"
name=threads
cd "$ROOT"
if [ ! -f tests/threads.c ]; then result $name passed "skipped: no tests/threads.c"; exit 0; fi
cc=${CHECK_CC:-clang}
lua_inc=${LUA_INC:--I/usr/include/lua5.4}
curl_cflags=$(pkg-config --cflags libcurl 2>/dev/null || true)
curl_libs=$(pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
lua_lib=${LUA_LIB:--llua5.4}

srv_out=$CHECK_DIR/echo_server.out
"$LUA" tools/check/echo_server.lua --seconds 300 >"$srv_out" 2>&1 &
srv=$!
trap 'kill $srv 2>/dev/null || true' EXIT INT TERM
url=
n=0
while [ $n -lt 100 ]; do
  url=$(sed -n 's/^echo-server listening on //p' "$srv_out")
  [ -n "$url" ] && break
  n=$((n + 1)); sleep 0.1
done
if [ -z "$url" ]; then cat "$srv_out" >&2; result $name failed "echo server did not start"; exit 1; fi

status=0
notes=
for san in ${THREADS_SANITIZERS:-address,undefined thread}; do
  exe=$CHECK_DIR/threads-$(echo "$san" | tr ',' '-')
  extra=
  [ "$san" = "address,undefined" ] && extra="-fno-sanitize-recover=undefined"
  # shellcheck disable=SC2086
  if ! $cc -std=c99 -O1 -g -fno-omit-frame-pointer -fsanitize=$san $extra -pthread -Isrc $lua_inc $curl_cflags \
      -o "$exe" tests/threads.c src/*.c $lua_lib $curl_libs -lm -ldl >"$exe.build.log" 2>&1; then
    cat "$exe.build.log" >&2
    say "threads: build with -fsanitize=$san failed"; status=1; continue
  fi
  say "== check threads: $exe $url/threads"
  if TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1" \
     ASAN_OPTIONS="detect_leaks=1:abort_on_error=1" UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
     timeout -k 5 300 "$exe" "$url/threads" >"$exe.log" 2>&1; then
    cat "$exe.log"
    notes="$notes $san ok;"
  else
    cat "$exe.log"
    say "threads: -fsanitize=$san run failed"; status=1
    notes="$notes $san FAILED;"
  fi
done
if [ $status -eq 0 ]; then result $name passed "${notes# }"; else result $name failed "${notes# }"; exit 1; fi
