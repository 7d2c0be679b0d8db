#!/usr/bin/env bash
# build-llama-server.sh - build llama.cpp's `llama-server` from the llama.cpp
# sources that the llama-cpp-python sdist on PyPI vendors (vendor/llama.cpp).
#
# Used only by the serve benchmark (tools/bench_serve.py --server llama); the
# xelm build and tests never depend on it. Needs: bash, python3 with pip, tar,
# cmake, a C/C++ compiler (ninja and ccache are used when present). The only
# network access is `pip download` of the sdist, skipped when it is on disk.
#
# Usage: scripts/build-llama-server.sh [--print-path]
#   --print-path   only print where the binary is (or will be) and exit
#
# Environment:
#   LLAMA_SERVER_BUILD_DIR  where the sources are unpacked and built
#                           (default /work/llama-server-build; never the repo)
#   LLAMA_CPP_PYTHON_VERSION  sdist version (default 0.3.36)
#   LLAMA_SDIST             path of the sdist .tar.gz if it is already on disk
#                           (default: looked for in /tmp/llsdist and the build dir)
#   JOBS                    parallel compile jobs (default 2)
#   NICE                    nice level for the build (default 10)
#   LLAMA_SERVER_NATIVE     auto (default), 1 or 0: see the AMX note below
#   CCACHE_DIR              used if ccache is installed (default
#                           /work/llama-build/ccache when that exists)
#
# The build is Release, -DGGML_NATIVE=ON (tuned for the machine it runs on, as
# xelm is; see the AMX note below), no tests/examples, no web UI download, no curl/openssl; only the
# llama-server target is built. The last line printed is the binary's path.
set -euo pipefail

PROG=build-llama-server
die() { echo "$PROG: error: $*" >&2; exit 1; }
say() { echo "$PROG: $*" >&2; }

VER=${LLAMA_CPP_PYTHON_VERSION:-0.3.36}
BUILD_ROOT=${LLAMA_SERVER_BUILD_DIR:-/work/llama-server-build}
JOBS=${JOBS:-2}
NICE=${NICE:-10}
SRC_TOP="$BUILD_ROOT/llama_cpp_python-$VER"
SRC="$SRC_TOP/vendor/llama.cpp"
BLD="$BUILD_ROOT/build-$VER"
BIN="$BLD/bin/llama-server"

if [[ "${1:-}" == "--print-path" ]]; then echo "$BIN"; exit 0; fi
[[ $# -eq 0 ]] || die "unknown argument: $1 (usage: $0 [--print-path])"

case "$BUILD_ROOT" in
  "$(cd "$(dirname "$0")/.." && pwd)"*) die "LLAMA_SERVER_BUILD_DIR must be outside the repository";;
esac
mkdir -p "$BUILD_ROOT"

# ------------------------------------------------------------------- sources
if [[ ! -f "$SRC/CMakeLists.txt" ]]; then
  SDIST=${LLAMA_SDIST:-}
  if [[ -z "$SDIST" ]]; then
    for cand in "/tmp/llsdist/llama_cpp_python-$VER.tar.gz" "$BUILD_ROOT/sdist/llama_cpp_python-$VER.tar.gz"; do
      [[ -f "$cand" ]] && { SDIST=$cand; break; }
    done
  fi
  if [[ -z "$SDIST" ]]; then
    say "downloading the llama-cpp-python==$VER sdist from PyPI"
    mkdir -p "$BUILD_ROOT/sdist"
    python3 -m pip download --quiet --no-deps --no-binary :all: \
      -d "$BUILD_ROOT/sdist" "llama-cpp-python==$VER"
    SDIST="$BUILD_ROOT/sdist/llama_cpp_python-$VER.tar.gz"
  fi
  [[ -f "$SDIST" ]] || die "sdist not found: $SDIST"
  say "extracting $SDIST"
  tar -xzf "$SDIST" -C "$BUILD_ROOT"
  [[ -f "$SRC/CMakeLists.txt" ]] || die "no vendor/llama.cpp in $SDIST"
fi

# ----------------------------------------------------------------- configure
LAUNCHER=()
if command -v ccache >/dev/null 2>&1; then
  if [[ -z "${CCACHE_DIR:-}" && -d /work/llama-build/ccache ]]; then
    export CCACHE_DIR=/work/llama-build/ccache
  fi
  LAUNCHER=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
GEN=()
command -v ninja >/dev/null 2>&1 && GEN=(-G Ninja)

# GGML_NATIVE=ON compiles ggml's CPU backend with -march=native. Where the CPU
# advertises AMX but the (virtual) machine cannot run AMX tile instructions -
# seen on a Firecracker VM, where llama-server then dies in its AMX matmul -
# the same ISA is spelled out instead, from /proc/cpuinfo, with AMX off
# (LLAMA_SERVER_NATIVE=1 forces -march=native, =0 forces the explicit list).
amx_works() {
  local d; d=$(mktemp -d)
  cat > "$d/amx.c" <<'EOF2'
#include <immintrin.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
  if (syscall(SYS_arch_prctl, 0x1023, 18)) return 2; /* ARCH_REQ_XCOMP_PERM, XTILEDATA */
  unsigned char cfg[64] __attribute__((aligned(64)));
  memset(cfg, 0, sizeof cfg);
  cfg[0] = 1; cfg[16] = 64; cfg[48] = 16; /* palette 1, tile 0: 16 rows x 64 bytes */
  _tile_loadconfig(cfg);
  _tile_zero(0);
  _tile_release();
  return 0;
}
EOF2
  local ok=1
  if ${CC:-cc} -O1 -mamx-tile "$d/amx.c" -o "$d/amx" 2>/dev/null && bash -c '"$1"' _ "$d/amx" >/dev/null 2>&1; then ok=0; fi 2>/dev/null
  rm -rf "$d"
  return $ok
}
flag() { grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -qx "$1" && echo ON || echo OFF; }
NATIVE=${LLAMA_SERVER_NATIVE:-auto}
if [[ "$NATIVE" == auto ]]; then
  NATIVE=1
  if [[ $(flag amx_tile) == ON ]] && ! amx_works; then
    say "the CPU advertises AMX but AMX instructions fault here: explicit ISA flags without AMX instead of -march=native"
    NATIVE=0
  fi
fi
if [[ "$NATIVE" == 1 ]]; then
  ISA=(-DGGML_NATIVE=ON)
else
  ISA=(-DGGML_NATIVE=OFF -DGGML_SSE42="$(flag sse4_2)" -DGGML_AVX="$(flag avx)" -DGGML_AVX2="$(flag avx2)"
       -DGGML_FMA="$(flag fma)" -DGGML_F16C="$(flag f16c)" -DGGML_BMI2="$(flag bmi2)"
       -DGGML_AVX_VNNI="$(flag avx_vnni)" -DGGML_AVX512="$(flag avx512f)"
       -DGGML_AVX512_VBMI="$(flag avx512vbmi)" -DGGML_AVX512_VNNI="$(flag avx512_vnni)"
       -DGGML_AVX512_BF16="$(flag avx512_bf16)" -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
fi

say "configuring in $BLD (${ISA[*]})"
# LLAMA_CURL is deprecated (only warns) in this llama.cpp; it is off anyway.
# LLAMA_USE_PREBUILT_UI=OFF: no web UI download at build time (the server
# then embeds an empty UI table; the HTTP API is unaffected).
cmake -S "$SRC" -B "$BLD" "${GEN[@]}" "${LAUNCHER[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF \
  "${ISA[@]}" \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_COMMON=ON \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_LLGUIDANCE=OFF \
  -DGGML_OPENMP=ON \
  >&2

# --------------------------------------------------------------------- build
say "building llama-server (-j$JOBS, nice $NICE)"
nice -n "$NICE" cmake --build "$BLD" --config Release --target llama-server -j "$JOBS" >&2
[[ -x "$BIN" ]] || die "build finished but $BIN is missing"
"$BIN" --version >&2 2>&1 || true
echo "$BIN"
