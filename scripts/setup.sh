#!/usr/bin/env bash
# setup.sh — installs xelm's build and test dependencies from Debian's packages and builds the
# release binary (build/release/xelm).  Usage: scripts/setup.sh [--deps-only]
# OpenCL implementations: PoCL (the default test device), Mesa's rusticl (a second implementation,
# enabled with RUSTICL_ENABLE=llvmpipe), and Intel's NEO driver for its offline compiler (ocloc,
# the Iris Xe compile gate) with iga64 (libigc-tools) for the ISA report; without an Intel GPU the
# NEO ICD offers no platform and is ignored.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  build-essential cmake ninja-build git pkg-config
  ocl-icd-opencl-dev opencl-clhpp-headers opencl-c-headers libclblast-dev pocl-opencl-icd clinfo
  mesa-opencl-icd intel-opencl-icd libigc-tools
  libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev zlib1g-dev libssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libutf8proc-dev libpcre2-dev libedit-dev libcpp-httplib-dev
  python3 python3-pip
  clang libclang-rt-14-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  echo "setup: installing ${missing[*]}"
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[[ "${1:-}" == "--deps-only" ]] && exit 0

cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"
echo "setup: built build/release/xelm"
