#!/usr/bin/env bash
# setup.sh — installs xelm's build and test dependencies from Debian's packages, the `openai`
# Python client for the `xelm serve` tests (into .venv, from PyPI), and builds the release binary
# (build/release/xelm).  Usage: scripts/setup.sh [--deps-only]
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
  python3 python3-pip python3-venv curl
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
# The real `openai` client drives `xelm serve` in tests/serve_client_test.py (run by
# tests/test_serve.cpp from .venv/bin/python). Pinned for repeatable tests; best effort, since PyPI
# may be unreachable (the test then skips, except under CI, where it fails).
openai_version=3.54.0
if ! .venv/bin/python -c "import openai, sys; sys.exit(openai.__version__ != '${openai_version}')" 2>/dev/null; then
  echo "setup: installing the openai Python client ${openai_version} into .venv"
  if ! { python3 -m venv .venv && .venv/bin/pip install -q --disable-pip-version-check "openai==${openai_version}"; }; then
    echo "setup: could not install the openai package into .venv; the serve client test will not run"
  fi
fi

[[ "${1:-}" == "--deps-only" ]] && exit 0

cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"
echo "setup: built build/release/xelm"
