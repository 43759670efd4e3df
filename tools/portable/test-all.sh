#!/bin/sh
# `make test-all`: the whole busted suite on every interpreter, then the headless Neovim test, the embed
# example and `luarocks make` for 5.1 and 5.4. Ends with one line: "N passed, N failed" (exit status 0
# only when nothing failed).
# Usage: sh tools/portable/test-all.sh          (LUAS="lua5.1 luajit lua5.3 lua5.4" by default)
# Each interpreter gets its own build (make build LUA=x -> build/x/gemini/core.so) and busted runs with
# --lua=x and LUA_CPATH pointing at that build. The emulator child of the spec helper runs under lua5.4.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
luas=${LUAS:-lua5.1 luajit lua5.3 lua5.4}
make=${MAKE:-make}
passed=0
failed=0
summary=""
log=$(mktemp)
trap 'rm -f "$log"' EXIT

note() { summary="$summary
  $1"; }

# Adds the counts of the last busted summary line in $log; a missing line counts as one failure.
count_busted() {
  line=$(grep -a -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$log" | tail -n 1)
  if [ -z "$line" ]; then
    failed=$((failed + 1)); note "$1: busted printed no summary (crash?)"; return
  fi
  s=$(echo "$line" | sed -E 's#^([0-9]+) success.*#\1#')
  f=$(echo "$line" | sed -E 's#^[0-9]+ success(es)? / ([0-9]+) failure.*#\2#')
  e=$(echo "$line" | sed -E 's#.* / ([0-9]+) errors? / .*#\1#')
  passed=$((passed + s)); failed=$((failed + f + e))
  note "$1: $line"
}

lua_path="$root/lua/?.lua;$root/lua/?/init.lua;$root/?.lua;;"
# Build every interpreter first: specs start lua5.4 children (emulator, examples, tools), which must find
# the 5.4 build whichever interpreter runs busted.
built=""
for lua in $luas; do
  echo "== build for $lua"
  if $make --no-print-directory build LUA="$lua"; then built="$built $lua"
  else failed=$((failed + 1)); note "$lua: build failed"; fi
done
case " $built " in *" lua5.4 "*) ;; *) $make --no-print-directory build LUA=lua5.4 >/dev/null 2>&1 ;; esac

for lua in $built; do
  echo "== busted on $lua"
  # Each interpreter reads its own variable first (LUA_CPATH_5_4, LUA_CPATH_5_3, then LUA_CPATH), so a
  # child of another version still loads its own build. --cpath overrides .busted's 5.4 default.
  # No ';' in busted's arguments: `busted --lua=x` re-executes itself through a shell without quoting.
  case $lua in lua5.1|luajit) c51=$lua ;; *) c51=luajit ;; esac
  LUA_PATH="$lua_path" LUA_PATH_5_3="$lua_path" LUA_PATH_5_4="$lua_path" \
  LUA_CPATH="$root/build/$c51/?.so;;" LUA_CPATH_5_3="$root/build/lua5.3/?.so;;" \
  LUA_CPATH_5_4="$root/build/lua5.4/?.so;;" \
    busted --lua="$lua" --cpath="$root/build/$lua/?.so" ${BUSTED_ARGS:-} spec 2>&1 | tee "$log"
  count_busted "$lua"
done

echo "== neovim (headless, luajit build)"
if command -v nvim >/dev/null 2>&1; then
  if [ -f "$root/build/luajit/gemini/core.so" ] || $make --no-print-directory build LUA=luajit; then
    sh tools/portable/nvim-test.sh >"$log" 2>&1; rc=$?
    cat "$log"
    line=$(grep -a -E '^nvim: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    if [ -n "$line" ]; then
      p=$(echo "$line" | sed -E 's#^nvim: ([0-9]+) passed.*#\1#')
      f=$(echo "$line" | sed -E 's#.* ([0-9]+) failed.*#\1#')
      passed=$((passed + p)); failed=$((failed + f))
      [ "$rc" -ne 0 ] && [ "$f" -eq 0 ] && failed=$((failed + 1))
      note "$line (exit $rc)"
    else
      failed=$((failed + 1)); note "nvim: no result line (exit $rc)"
    fi
  else
    failed=$((failed + 1)); note "nvim: luajit build failed"
  fi
else
  failed=$((failed + 1)); note "nvim: not installed (apt-get install neovim)"
fi

echo "== embed (C host, Lua 5.4, core linked statically)"
if sh tools/portable/embed-test.sh; then passed=$((passed + 1)); note "embed: passed"
else failed=$((failed + 1)); note "embed: failed"; fi

echo "== luarocks make for 5.1 and 5.4 (no CURL_INCDIR)"
if command -v luarocks >/dev/null 2>&1; then
  if sh tools/portable/rock-check.sh; then passed=$((passed + 1)); note "rock: passed"
  else failed=$((failed + 1)); note "rock: failed"; fi
else
  failed=$((failed + 1)); note "rock: luarocks not installed"
fi

echo "== summary$summary"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
