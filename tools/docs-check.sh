#!/bin/sh
# Builds the LDoc reference (config.ld) into a temporary directory and fails on any LDoc complaint.
# Usage: sh tools/docs-check.sh          (from anywhere; needs lua-ldoc and lua-markdown)
# Fails when `ldoc .` exits non-zero or prints a line that
#   - names a source position (path:line, e.g. "lua/gemini/x.lua:12: ..." or "src/client.c:133: ..."),
#   - mentions a warning or an error,
#   - says a formatter was not found (without lua-markdown LDoc falls back to plain text),
# or when index.html or a public module's page is missing.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 2
command -v ldoc >/dev/null 2>&1 || { echo "docs-check: ldoc not found (sh tools/deps.sh docs)" >&2; exit 2; }
out=$(mktemp -d "${TMPDIR:-/tmp}/lua-gemini-docs.XXXXXX") || exit 2
log="$out/ldoc.log"
trap 'rm -rf "$out"' EXIT INT TERM

status=0
ldoc . -d "$out/html" >"$log" 2>&1 || { echo "docs-check: ldoc exited with status $?" >&2; status=1; }

bad=$(grep -Ei '[^[:space:]]:[0-9]+|warning|error|not found' "$log")
if [ -n "$bad" ]; then
  echo "docs-check: ldoc complained:" >&2
  printf '%s\n' "$bad" >&2
  status=1
fi

[ -f "$out/html/index.html" ] || { echo "docs-check: no index.html" >&2; status=1; }
for m in gemini gemini.client gemini.handles gemini.operation gemini.pager gemini.errors gemini.luv \
         gemini.batch gemini.text gemini.safety gemini.dataset gemini.progress gemini.chat gemini.index \
         gemini.cli gemini.core gemini.emulator.app gemini.emulator.server gemini.emulator.pager; do
  [ -f "$out/html/modules/$m.html" ] || { echo "docs-check: no page for module $m" >&2; status=1; }
done
# the C functions are merged into gemini.core from every src/*.c file
for f in 'client(' 'client:perform(' 'client:start(' 'handle(' 'vector(' 'decode_embeddings(' 'json_decode('; do
  grep -qF "$f" "$out/html/modules/gemini.core.html" 2>/dev/null ||
    { echo "docs-check: gemini.core lacks $f" >&2; status=1; }
done

[ "$status" -eq 0 ] && echo "docs-check: ok ($(ls "$out/html/modules" | wc -l) module pages, no LDoc warnings)"
exit "$status"
