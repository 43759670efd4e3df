#!/bin/sh
# `make demo`: starts the bundled emulator on a free port and runs examples/quickstart.lua against it.
set -eu
lua=${LUA:-lua5.4}
out=$(mktemp)
"$lua" bin/gemini-emulator --port 0 --api-key demo-key=demo@example.com >"$out" &
emu=$!
trap 'kill $emu 2>/dev/null; wait $emu 2>/dev/null; rm -f "$out"' EXIT INT TERM
i=0
until grep -q "listening on" "$out"; do
  i=$((i + 1))
  if [ $i -gt 100 ] || ! kill -0 $emu 2>/dev/null; then echo "demo: the emulator did not start" >&2; exit 1; fi
  sleep 0.1
done
url=$(sed -n 's/^gemini-emulator listening on //p' "$out")
echo "demo: emulator at $url"
GEMINI_BASE_URL=$url GEMINI_API_KEY=demo-key "$lua" examples/quickstart.lua
