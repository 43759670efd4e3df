# Shared helpers for the tools/check/*.sh steps of `make check` (sourced, POSIX sh).
# Every step ends by printing exactly one line "check: NAME passed" or "check: NAME failed"
# (or "check: NAME skipped (why)"), which tools/check/counts.sh adds up.

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LUA=${CHECK_LUA:-lua5.4}   # not $LUA: `make test LUA=luajit` exports LUA, the check steps stay on 5.4
CHECK_DIR=${CHECK_DIR:-$ROOT/build/check}
mkdir -p "$CHECK_DIR"

# Lua path for the repository's modules; LUA_CPATH is set per step (each step has its own build).
LUA_PATH="$ROOT/lua/?.lua;$ROOT/lua/?/init.lua;$ROOT/?.lua;;"
export LUA_PATH

say() { printf '%s\n' "$*"; }

# result NAME passed|failed [detail]
result() {
  if [ -n "${3:-}" ]; then say "check: $1 $2 ($3)"; else say "check: $1 $2"; fi
}

# The busted runner script run directly by $LUA (one process; busted's --lua would re-exec through sh).
busted_script() {
  b=$(command -v busted 2>/dev/null || true)
  if [ -z "$b" ]; then echo "check: busted not found" >&2; return 1; fi
  if head -n 1 "$b" | grep -q 'lua'; then printf '%s\n' "$b"; return 0; fi
  # A LuaRocks wrapper (shell script): use the Lua file it execs.
  inner=$(grep -o "[^ '\"]*bin/busted[^ '\"]*" "$b" | grep -v "^$b\$" | tail -n 1)
  if [ -n "$inner" ] && [ -f "$inner" ]; then printf '%s\n' "$inner"; return 0; fi
  echo "check: cannot find busted's Lua script behind $b" >&2
  return 1
}

# busted_summary LOG -> "successes failures errors" from busted's summary line, or nothing.
busted_summary() {
  grep -a -E '^[0-9]+ success(es)? / [0-9]+ failures? / [0-9]+ errors? / [0-9]+ pending' "$1" | tail -n 1 |
    sed -E 's#^([0-9]+) success(es)? / ([0-9]+) failures? / ([0-9]+) errors? / .*#\1 \3 \4#'
}

# build_core BUILD_DIR CC CFLAGS: the Makefile's own build rule into a separate directory.
build_core() {
  make -C "$ROOT" --no-print-directory build LUA="$LUA" BUILD="$1" CC="$2" CFLAGS="$3" >"$CHECK_DIR/build-$(basename "$1").log" 2>&1 || {
    cat "$CHECK_DIR/build-$(basename "$1").log" >&2
    return 1
  }
}

have_core_sources() { ls "$ROOT"/src/*.c >/dev/null 2>&1; }

# llvm-symbolizer for readable sanitizer stacks (Debian: package llvm-14 or llvm); empty when none.
symbolizer() {
  for s in llvm-symbolizer llvm-symbolizer-14 /usr/lib/llvm-14/bin/llvm-symbolizer; do
    p=$(command -v "$s" 2>/dev/null || true)
    if [ -n "$p" ]; then printf '%s\n' "$p"; return 0; fi
  done
  echo "check: no llvm-symbolizer (install llvm-14): sanitizer stacks will show addresses only" >&2
}
