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
#   CCACHE_DIR              used if ccache is installed (default
#                           /work/llama-build/ccache when that exists)
#
# The build is Release, -DGGML_NATIVE=ON (tuned for the machine it runs on, as
# xelm is), no tests/examples, no web UI download, no curl/openssl; only the
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

if [[ ! -f "$BLD/CMakeCache.txt" ]]; then
  say "configuring in $BLD"
  # LLAMA_CURL is deprecated (only warns) in this llama.cpp; it is off anyway.
  # LLAMA_USE_PREBUILT_UI=OFF: no web UI download at build time (the server
  # then embeds an empty UI table; the HTTP API is unaffected).
  cmake -S "$SRC" -B "$BLD" "${GEN[@]}" "${LAUNCHER[@]}" \
    -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF \
    -DGGML_NATIVE=ON \
    -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_COMMON=ON \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
    -DLLAMA_OPENSSL=OFF -DLLAMA_LLGUIDANCE=OFF \
    -DGGML_OPENMP=ON \
    >&2
fi

# --------------------------------------------------------------------- build
say "building llama-server (-j$JOBS, nice $NICE)"
nice -n "$NICE" cmake --build "$BLD" --config Release --target llama-server -j "$JOBS" >&2
[[ -x "$BIN" ]] || die "build finished but $BIN is missing"
"$BIN" --version >&2 2>&1 || true
echo "$BIN"
