#!/usr/bin/env bash
# fuzz.sh — build the libFuzzer GGUF target (the `fuzz` preset: clang, ASan+UBSan) and fuzz the GGUF
# reader for SECONDS (default 60) over a scratch copy of tests/data/fuzz/gguf, so the committed seed
# corpus stays small. Crash inputs land in build/fuzz/artifacts/.
# Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
seconds="${1:-60}"
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

cmake --preset fuzz
cmake --build --preset fuzz -j2 --target fuzz_gguf

corpus="$root/build/fuzz/corpus/gguf"
artifacts="$root/build/fuzz/artifacts/"
mkdir -p "$corpus" "$artifacts"
cp -n tests/data/fuzz/gguf/* "$corpus/"

./build/fuzz/tests/fuzz_gguf "$corpus" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=2048 \
  -artifact_prefix="$artifacts" -print_final_stats=1
