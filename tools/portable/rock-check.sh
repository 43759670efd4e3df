#!/bin/sh
# Installs the rockspec with `luarocks make --deps-mode=none` for Lua 5.1 and 5.4 into a throwaway tree
# (no CURL_INCDIR given: the CURL dependency must be found on Debian/Ubuntu multiarch by itself), then
# loads gemini and gemini.core from that tree with lua5.1, luajit and lua5.4.
# Prints "rock: passed" or "rock: failed" last.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
spec=$(ls ./*.rockspec 2>/dev/null | head -n 1)
[ -n "$spec" ] || { echo "rock: no rockspec at the repository root"; echo "rock: failed"; exit 1; }
tree=$(mktemp -d)
work=$(mktemp -d)
trap 'rm -rf "$tree" "$work"' EXIT
# luarocks' builtin backend writes objects next to the sources: build in a copy of the checkout.
if git rev-parse --git-dir >/dev/null 2>&1; then
  git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$work" 2>/dev/null
else
  cp -r . "$work"
fi
cd "$work" || exit 1
status=0
for v in ${ROCK_LUA_VERSIONS:-5.1 5.4}; do
  echo "== luarocks --lua-version=$v make --deps-mode=none $spec"
  if ! luarocks --lua-version="$v" --tree "$tree" make --deps-mode=none "$spec"; then
    echo "rock: luarocks make failed for Lua $v"; status=1; continue
  fi
  case $v in 5.1) luas="lua5.1 luajit" ;; *) luas="lua$v" ;; esac
  for lua in $luas; do
    # only the installed tree (plus the system's cjson/luv): not the working copy
    if (cd "$tree" && export T="$tree" && eval "$(luarocks --lua-version="$v" --tree "$tree" path)" && \
        $lua -e 'local g = require("gemini"); local c = require("gemini.core")
                 assert(not package.searchpath or package.searchpath("gemini", package.path):find(os.getenv("T"), 1, true))
                 print(_VERSION, g.VERSION, c.VERSION)' ); then
      echo "rock: $lua loads gemini from the installed tree"
    else
      echo "rock: $lua cannot load gemini from the installed tree"; status=1
    fi
  done
done
if [ $status -eq 0 ]; then echo "rock: passed"; else echo "rock: failed"; fi
exit $status
