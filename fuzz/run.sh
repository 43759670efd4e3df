#!/bin/sh
# Build and run the libFuzzer targets of gemini.core for a bounded time.
#   sh fuzz/run.sh [seconds per target, default 30]
# Needs clang with libFuzzer (Debian: clang + libclang-rt-<ver>-dev). Crashes land in fuzz/.
set -e
cd "$(dirname "$0")/.."
secs="${1:-30}"
out=build/fuzz
mkdir -p "$out/corpus-headers"
clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc fuzz/fuzz_headers.c src/headers.c -o "$out/fuzz_headers"
cd fuzz
"../$out/fuzz_headers" -max_total_time="$secs" -max_len=8192 "../$out/corpus-headers" corpus/headers
