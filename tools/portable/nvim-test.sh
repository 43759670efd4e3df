#!/bin/sh
# The headless Neovim test (spec/nvim/run.lua), once with lua-cjson hidden (the client must fall back to
# vim.json) and once with the system lua-cjson. Needs build/luajit/gemini/core.so (make build LUA=luajit).
# Prints each run's checks and ends with "nvim: N passed, N failed"; exit status 0 only if all passed.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! command -v nvim >/dev/null 2>&1; then
  echo "nvim: 0 passed, 1 failed (nvim not installed)"; exit 1
fi
if [ ! -f build/luajit/gemini/core.so ] && [ -z "${GEMINI_NVIM_CPATH:-}" ]; then
  echo "nvim: 0 passed, 1 failed (no build/luajit/gemini/core.so: run make build LUA=luajit)"; exit 1
fi
for mode in ${NVIM_JSON_MODES:-vim cjson}; do
  echo "== nvim --headless -u NONE (json=$mode)"
  # LUA_PATH/LUA_CPATH are cleared so the editor's LuaJIT sees only what run.lua puts on its paths.
  env -u LUA_PATH -u LUA_CPATH GEMINI_NVIM_EXTRA_PATH="${GEMINI_NVIM_EXTRA_PATH:-}" GEMINI_ROOT="$root" GEMINI_NVIM_JSON="$mode" \
    timeout -k 5 90 nvim --headless -u NONE -i NONE -n -c "luafile spec/nvim/run.lua" </dev/null >"$log" 2>&1
  rc=$?
  cat "$log"
  line=$(grep -a -E '^nvim: [0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
  if [ -z "$line" ]; then
    echo "nvim ($mode): no result line, exit status $rc"
    failed=$((failed + 1)); continue
  fi
  p=$(echo "$line" | sed -E 's#^nvim: ([0-9]+) passed.*#\1#')
  f=$(echo "$line" | sed -E 's#.* ([0-9]+) failed.*#\1#')
  passed=$((passed + p)); failed=$((failed + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then echo "nvim ($mode): exit status $rc"; failed=$((failed + 1)); fi
done
echo "nvim: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
