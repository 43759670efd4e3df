#!/bin/sh
# Builds examples/embed/host.c with the C core (src/*.c) linked in statically against Lua 5.4, starts the
# emulator (--latency 200) and runs the host's frame loop against it.
# Prints "embed: passed" or "embed: failed" last; exit status 0 or 1.
# Usage: sh tools/portable/embed-test.sh [--build-only]      (EMBED_LUA=lua5.4, CC=cc)
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
lua=${EMBED_LUA:-lua5.4}
out=build/embed
bin=$out/host-$lua
emu_out=""
emu=""
cleanup() {
  [ -n "$emu" ] && kill "$emu" 2>/dev/null && wait "$emu" 2>/dev/null
  [ -n "$emu_out" ] && rm -f "$emu_out" "$emu_out.err"
}
trap cleanup EXIT
fail() { echo "embed: $*" >&2; echo "embed: failed"; exit 1; }

lua_cflags=$(pkg-config --cflags "$lua" 2>/dev/null || echo "-I/usr/include/$lua")
lua_libs=$(pkg-config --libs "$lua" 2>/dev/null || echo "-l$lua")
curl_cflags=$(pkg-config --cflags libcurl 2>/dev/null)
curl_libs=$(pkg-config --libs libcurl 2>/dev/null || echo -lcurl)
ls src/*.c >/dev/null 2>&1 || fail "no C sources in src/"
mkdir -p "$out"
echo "embed: ${CC:-cc} ... -o $bin examples/embed/host.c src/*.c $lua_libs $curl_libs"
# shellcheck disable=SC2086
${CC:-cc} -std=c99 -Wall -Wextra -Werror -pedantic -Wno-overlength-strings ${CFLAGS:--O2 -g} \
  -Isrc $lua_cflags $curl_cflags -o "$bin" examples/embed/host.c src/*.c $lua_libs $curl_libs -lm -ldl \
  || fail "build failed"
[ "${1:-}" = "--build-only" ] && { echo "embed: built $bin"; exit 0; }

emu_out=$(mktemp)
lua5.4 bin/gemini-emulator --port 0 --latency 200 --api-key embed-key=embed@example.com \
  >"$emu_out" 2>"$emu_out.err" </dev/null &
emu=$!
i=0
until grep -q "listening on" "$emu_out" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -gt 100 ] || ! kill -0 "$emu" 2>/dev/null; then
    cat "$emu_out.err" >&2; fail "the emulator did not start"
  fi
  sleep 0.1
done
url=$(sed -n 's/^gemini-emulator listening on //p' "$emu_out" | head -n 1)
echo "embed: emulator at $url"
# The host finds the Lua layer in lua/ and lua-cjson on the interpreter's default C path.
if env -u LUA_PATH -u LUA_CPATH -u LUA_PATH_5_4 -u LUA_CPATH_5_4 GEMINI_API_KEY=embed-key \
    timeout -k 5 60 "$bin" --lua-dir "$root/lua" --script examples/embed/game.lua --requests 12 "$url"; then
  echo "embed: passed"
else
  echo "embed: failed"
  exit 1
fi
