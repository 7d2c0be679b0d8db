#!/usr/bin/env bash
# device-check.sh — proves and measures xelm's OpenCL path on a machine with a real GPU, in minutes,
# with nothing but the working tree and one carried folder (no package registry there).
#
#   here:  scripts/device-check.sh --pack
#            builds the release binaries (build/ci preset) if needed and gathers them, the test
#            binary and the shared libraries a bare machine lacks (OpenCL ICD loader, CLBlast,
#            spdlog/fmt, PCRE2, utf8proc, libedit, cpp-httplib, OpenSSL, ...) into .device-pack/
#            (git-ignored, well under 64 MiB).
#   there: OUT=/some/dir scripts/device-check.sh      (the device tool: carry [".device-pack"])
#            finds the vendor's OpenCL driver (an ICD file, or libnvidia-opencl.so* in the driver's
#            folders, for which it writes an .icd and points OCL_ICD_VENDORS at it), lists the devices,
#            runs the OpenCL op tests and the whole-model parity tests on the GPU, makes a
#            Qwen3-0.6B-shape model (F16, then Q4_K_M and Q8_0 by `xelm quantize`) and runs
#            `xelm bench --backend cpu,opencl -ngl 0,99` on each; writes $OUT/device-report.md
#            (and the raw logs beside it). Every step has a time limit; the whole run stays under
#            4 minutes on a 16-core machine. Never run by CI.
#   Options (there): --small  a 4-layer model instead of the 0.6B shape (dry runs on a CPU device).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
pack=$root/.device-pack

# ---- here: gather what travels -------------------------------------------------------------------
if [[ "${1:-}" == "--pack" ]]; then
  set -e
  if [[ ! -x build/ci/xelm || ! -x build/ci/tests/xelm_tests ]]; then
    cmake --preset ci >/dev/null
    cmake --build --preset ci -j "$(nproc)"
  fi
  rm -rf "$pack"
  mkdir -p "$pack/bin" "$pack/lib"
  cp build/ci/xelm build/ci/tests/xelm_tests "$pack/bin/"
  # Every shared library of the binaries except the C runtime and the C++ runtime (the GPU machine's
  # own are newer, and its driver libraries need them), resolved to real files.
  ldd build/ci/xelm build/ci/tests/xelm_tests | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
    grep -Ev '/(libc|libm|libpthread|libdl|librt|ld-linux[^/]*|libstdc\+\+|libgcc_s)\.so' |
    while read -r lib; do cp -L "$lib" "$pack/lib/"; done
  # The tests find their data and the xelm binary through the paths they were built with.
  echo "$root" >"$pack/source-dir"
  git rev-parse --short HEAD >"$pack/commit" 2>/dev/null || echo unknown >"$pack/commit"
  du -sh "$pack"
  echo "device-check: packed into .device-pack/ (carry it: [\".device-pack\"])"
  exit 0
fi

# ---- there: check and measure --------------------------------------------------------------------
small=false
[[ "${1:-}" == "--small" ]] && small=true
out=${OUT:-$root/device-check-out}
mkdir -p "$out"
report=$out/device-report.md
started=$(date +%s)
say() { echo "$*" | tee -a "$report"; }
elapsed() { echo $(($(date +%s) - started)); }
: >"$report"

if [[ ! -x "$pack/bin/xelm" ]]; then
  say "device-check: no .device-pack/bin/xelm — run scripts/device-check.sh --pack here first and carry .device-pack"
  exit 1
fi
export LD_LIBRARY_PATH="$pack/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
xelm=$pack/bin/xelm
tests=$pack/bin/xelm_tests
# The test binary was built in another checkout: make its source path lead to this one.
built_in=$(cat "$pack/source-dir")
if [[ "$built_in" != "$root" && ! -e "$built_in" ]]; then
  mkdir -p "$(dirname "$built_in")" && ln -s "$root" "$built_in"
fi
mkdir -p "$root/build/ci/tests"
ln -sf "$xelm" "$root/build/ci/xelm"
ln -sf "$tests" "$root/build/ci/tests/xelm_tests"
export XELM_KERNEL_CACHE_DIR=$out/kernel-cache

say "# xelm device check"
say ""
say "- commit $(cat "$pack/commit"), run $(date -u +%Y-%m-%dT%H:%MZ) on $(uname -m), $(nproc) cores"
say "- CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
if command -v nvidia-smi >/dev/null; then
  say "- GPU: $(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -n 1)"
fi

# The vendor's OpenCL driver: the machine's ICD files if it has any, else the NVIDIA library found
# in the driver's folders (containers often mount the driver without /etc/OpenCL/vendors).
icd_dir=/etc/OpenCL/vendors
if ! ls "$icd_dir"/*.icd >/dev/null 2>&1; then
  icd_dir=$out/icd
  mkdir -p "$icd_dir"
  found=""
  for dir in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib \
    /usr/local/cuda/lib64 /usr/local/cuda/compat; do
    found=$(ls "$dir"/libnvidia-opencl.so* 2>/dev/null | sort | head -n 1)
    [[ -n "$found" ]] && break
  done
  [[ -z "$found" ]] && found=$(ldconfig -p 2>/dev/null | awk '/libnvidia-opencl\.so/ {print $NF; exit}')
  if [[ -z "$found" ]]; then
    say "- OpenCL driver: none found (no /etc/OpenCL/vendors/*.icd, no libnvidia-opencl.so* in the driver folders): nothing to measure on a GPU"
    exit 1
  fi
  echo "$found" >"$icd_dir/nvidia.icd"
  say "- OpenCL driver: $found (no ICD file on the machine; wrote $icd_dir/nvidia.icd)"
fi
export OCL_ICD_VENDORS=$icd_dir

say ""
say "## Devices (\`xelm devices\`)"
say ""
say '```'
timeout 60 "$xelm" devices 2>&1 | tee -a "$report"
say '```'

# Runs a step under a time limit, its output in $out/<name>.log; prints the log's last lines.
step() {
  local name=$1 limit=$2
  shift 2
  local t0 status=0
  t0=$(date +%s)
  timeout "$limit" "$@" >"$out/$name.log" 2>&1 || status=$?
  echo "device-check: $name: exit $status after $(($(date +%s) - t0)) s (at $(elapsed) s)" | tee -a "$out/steps.log"
  return "$status"
}

say ""
say "## Correctness on the GPU"
say ""
# The OpenCL op-parity tests (each op against the reference backend) and whole-model parity.
filter='OpenCl*:OpenClModel/*:*BackendOps*opencl*'
if step tests 150 "$tests" --gtest_filter="$filter" --gtest_brief=1; then
  say "- OpenCL op and model parity tests: $(grep -E '^\[  PASSED  \]' "$out/tests.log" | tail -n 1)"
else
  say "- OpenCL op and model parity tests FAILED (exit $?): see tests.log"
  grep -E '^\[  FAILED  \]|Failure|error' "$out/tests.log" | head -n 30 | sed 's/^/    /' | tee -a "$report"
fi
grep -E '^\[opencl\]|^\[  SKIPPED' "$out/tests.log" | sort -u | head -n 10 | sed 's/^/    /' >>"$report"

say ""
say "## Speed (\`xelm bench --backend cpu,opencl -ngl 0,99\`)"
models=$out/models
mkdir -p "$models"
if $small; then
  make_args=(--layers 4 --embd 512 --heads 8 --kv-heads 4 --head-dim 64 --ff 1536 --vocab 32000)
  shape="a 4-layer, 512-wide test shape (--small)"
else
  make_args=(--preset qwen3-0.6b)
  shape="the Qwen3-0.6B shape (28 layers, 1024 wide, vocab 151936)"
fi
say ""
say "Model: $shape, random weights, made here by \`xelm make-test-model\` and \`xelm quantize\`."
if ! step make-model 90 "$xelm" make-test-model "${make_args[@]}" --type F16 -o "$models/f16.gguf"; then
  say "- could not make the model: see make-model.log"
  exit 1
fi
for type in Q4_K_M Q8_0 F16; do
  model=$models/f16.gguf
  if [[ $type != F16 ]]; then
    model=$models/$type.gguf
    step "quantize-$type" 60 "$xelm" quantize "$models/f16.gguf" "$model" "$type" || { say "- $type: quantize failed"; continue; }
  fi
  left=$((230 - $(elapsed)))
  if ((left < 20)); then
    say "- $type: skipped, the 4-minute budget is spent"
    continue
  fi
  say ""
  say "### $type"
  say ""
  if step "bench-$type" "$left" "$xelm" bench -m "$model" --backend cpu,opencl -ngl 0,99 -p 512 -n 128 -r 2 -t 0; then
    grep -E '^\|' "$out/bench-$type.log" | tee -a "$report"
  else
    say "bench failed or ran out of time: last lines of bench-$type.log"
    tail -n 15 "$out/bench-$type.log" | sed 's/^/    /' | tee -a "$report"
  fi
done
say ""
say "Finished in $(elapsed) s. Logs: $(cd "$out" && ls *.log | tr '\n' ' ')"
