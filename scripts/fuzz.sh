#!/usr/bin/env bash
# fuzz.sh — build the libFuzzer targets (the `fuzz` preset: clang, ASan+UBSan; one per tests/fuzz/*.cpp)
# and run each for SECONDS (default 60) over a scratch copy of its committed seed corpus
# tests/data/fuzz/<name> (target fuzz_<name>), so the committed corpora stay small; a dictionary
# tests/data/fuzz/<name>.dict is used when present. Crash inputs land in build/fuzz/artifacts/<name>/.
# Each run ends with libFuzzer's final stats (stat::number_of_executed_units, ...).
# Usage: scripts/fuzz.sh [SECONDS] [NAME...]   (NAME: gguf, model_load, tokenizer, openai_request; default all)
set -euo pipefail
seconds="${1:-60}"
shift || true
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

names=("$@")
if [[ ${#names[@]} -eq 0 ]]; then
  for src in tests/fuzz/fuzz_*.cpp; do
    name=$(basename "$src" .cpp)
    names+=("${name#fuzz_}")
  done
fi

cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j2 --target "${names[@]/#/fuzz_}"

for name in "${names[@]}"; do
  corpus="$root/build/fuzz/corpus/$name"
  artifacts="$root/build/fuzz/artifacts/$name/"
  mkdir -p "$corpus" "$artifacts"
  cp -n "tests/data/fuzz/$name"/* "$corpus/"
  case "$name" in
    gguf|model_load) max_len=65536 ;;
    *) max_len=16384 ;;
  esac
  dict=()
  [[ -f "tests/data/fuzz/$name.dict" ]] && dict=(-dict="tests/data/fuzz/$name.dict")
  echo "== fuzz_$name for $seconds s"
  "./build/fuzz/tests/fuzz_$name" "$corpus" "${dict[@]}" -max_total_time="$seconds" -max_len="$max_len" \
    -timeout=20 -rss_limit_mb=2048 -artifact_prefix="$artifacts" -print_final_stats=1
done
