#!/bin/sh
# Installs the Debian packages that building and testing lua-gemini need, if any are missing.
# Usage: sh tools/deps.sh [test|all|bench|docs]   (default: test)
# As root it runs `apt-get update` once and installs; otherwise it prints the exact command.
set -eu
set_name=${1:-test}
base="make gcc pkg-config curl ca-certificates lua5.4 liblua5.4-dev libcurl4-openssl-dev lua-cjson lua-busted lua-check lua-luv lua-socket"
check="clang libclang-rt-14-dev llvm-14 valgrind nginx openssl"
portable="luajit libluajit-5.1-dev lua5.1 liblua5.1-0-dev lua5.3 liblua5.3-dev neovim luarocks"
case "$set_name" in
  demo) want="$base" ;;
  test) want="$base $check luarocks lua-ldoc lua-markdown" ;;
  all) want="$base $check $portable" ;;
  docs) want="$base lua-ldoc lua-markdown" ;;
  *) echo "tools/deps.sh: unknown set '$set_name'" >&2; exit 2 ;;
esac
missing=""
for p in $want; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0
echo "lua-gemini: installing missing packages:$missing"
if [ "$(id -u)" -eq 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  [ -n "${LUA_GEMINI_APT_UPDATED:-}" ] || apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
else
  echo "Run as root:  apt-get update && apt-get install -y$missing" >&2
  exit 1
fi
