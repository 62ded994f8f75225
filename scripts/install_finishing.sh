#!/usr/bin/env bash
# Finishing stages: Practical-RIFE (CUDA interpolation) with its Python 3.12 / NumPy 2 requirements,
# Real-ESRGAN (upscaling) installed editable, and the rife-ncnn-vulkan release (Vulkan interpolation),
# each at the commit or release our adapters and mirrors were checked against (replace_actor_video/upstream/
# rife/pin.py and realesrgan/pin.py, read below). Called by install.sh.
# Idempotent: what is already in place is kept. SeedVR2 is not installed: see docs/FINISHING.md.
#
#   scripts/install_finishing.sh [--no-rife] [--no-realesrgan] [--no-ncnn] [--python python3]
#       [--rife-model-zip ZIP] [--ncnn-zip PATH|URL] [--no-pip] [--dry-run]
#
#   --rife-model-zip ZIP  a Practical-RIFE model zip (e.g. 4.25 from its README; Google Drive, so not
#                         downloaded here), unpacked into Practical-RIFE/train_log/ (env RIFE_MODEL_ZIP)
#   --ncnn-zip PATH|URL   the rife-ncnn-vulkan release zip (env RIFE_NCNN_ZIP; default: the 20221029
#                         Ubuntu zip from GitHub)
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
pin() { sed -n "s/^$2 = \"\(.*\)\"\$/\1/p" "$HERE/../replace_actor_video/upstream/$1/pin.py"; }
RIFE_URL="$(pin rife PRACTICAL_RIFE_REPO)"
RIFE_COMMIT="$(pin rife PRACTICAL_RIFE_COMMIT)"
ESRGAN_URL="$(pin realesrgan REPO)"
ESRGAN_COMMIT="$(pin realesrgan COMMIT)"
ESRGAN_WEIGHTS="https://github.com/xinntao/Real-ESRGAN/releases/download/v0.2.5.0"
NCNN_ZIP_DEFAULT="$(pin rife NCNN_RELEASE_ZIP)"

RIFE_DIR="${PRACTICAL_RIFE_DIR:-Practical-RIFE}"
ESRGAN_DIR="${REALESRGAN_DIR:-Real-ESRGAN}"
NCNN_DIR="rife-ncnn-vulkan"  # upstream/rife/ncnn.py INSTALL_DIR
RIFE_MODEL_ZIP="${RIFE_MODEL_ZIP:-}"
NCNN_ZIP="${RIFE_NCNN_ZIP:-$NCNN_ZIP_DEFAULT}"
PYTHON="python3"
DO_RIFE=1
DO_ESRGAN=1
DO_NCNN=1
PIP=1
DRY_RUN=0

usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-rife) DO_RIFE=0; shift ;;
    --no-realesrgan) DO_ESRGAN=0; shift ;;
    --no-ncnn) DO_NCNN=0; shift ;;
    --python) PYTHON="$2"; shift 2 ;;
    --rife-model-zip) RIFE_MODEL_ZIP="$2"; shift 2 ;;
    --ncnn-zip) NCNN_ZIP="$2"; shift 2 ;;
    --no-pip) PIP=0; shift ;;
    --dry-run|--dry_run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

run() {
  printf '+'; printf ' %q' "$@"; printf '\n'
  if [[ $DRY_RUN -eq 0 ]]; then "$@"; fi
}

# clone_at DIR URL COMMIT: a shallow clone of exactly COMMIT; an existing clone there, or an exported
# tree whose .rav-commit says COMMIT, is kept.
clone_at() {
  local dir="$1" url="$2" commit="$3"
  if [[ -d "$dir/.git" && "$(git -C "$dir" rev-parse HEAD 2>/dev/null)" == "$commit" ]]; then
    echo "$dir: clone at ${commit:0:7}, kept"; return
  fi
  if [[ ! -d "$dir/.git" && -f "$dir/.rav-commit" && "$(cat "$dir/.rav-commit")" == "$commit" ]]; then
    echo "$dir: exported tree of ${commit:0:7}, kept"; return
  fi
  need git
  if [[ -d "$dir/.git" ]]; then
    if [[ $DRY_RUN -eq 0 && -n "$(git -C "$dir" status --porcelain --untracked-files=no)" ]]; then
      echo "error: $dir has local changes; commit or stash them, or move it away" >&2; exit 2
    fi
  elif [[ -e "$dir" && -n "$(ls -A "$dir" 2>/dev/null)" ]]; then
    echo "error: $dir exists and is neither a git clone nor an export of ${commit:0:7} (.rav-commit); move it away" >&2
    exit 2
  else
    run git init -q "$dir"
    run git -C "$dir" remote add origin "$url"
  fi
  run git -C "$dir" fetch -q --depth 1 origin "$commit"
  run git -C "$dir" checkout -q --detach "$commit"
}

need() {
  if [[ $DRY_RUN -eq 0 ]] && ! command -v "$1" >/dev/null; then
    echo "error: $1 not found; install it (apt-get install $1)" >&2; exit 2
  fi
}

scratch() { if [[ $DRY_RUN -eq 1 ]]; then echo "/tmp/rav-finishing.XXXXXX"; else mktemp -d; fi; }

download() {  # download URL FILE
  need curl
  run curl -fL --retry 3 -o "$2" "$1"
}

fetch_to() {  # fetch_to URL|PATH FILE
  if [[ -f "$1" ]]; then run cp "$1" "$2"; else download "$1" "$2"; fi
}

unpack() {  # unpack ZIP DIR (Python's zipfile: no unzip needed; it drops the exec bits, restored below)
  run "$PYTHON" -m zipfile -e "$1" "$2"
}

if [[ $DO_RIFE -eq 1 ]]; then
  clone_at "$RIFE_DIR" "$RIFE_URL" "$RIFE_COMMIT"
  if [[ $PIP -eq 1 ]]; then
    # Upstream's requirements.txt pins numpy<=1.23.5 (no wheels for Python >= 3.12): ours replaces it.
    run "$PYTHON" -m pip install -r "$HERE/requirements_practical_rife_py312.txt"
    run "$PYTHON" "$HERE/patch_skvideo_numpy2.py"
  fi
  if [[ -f "$RIFE_DIR/train_log/flownet.pkl" && -f "$RIFE_DIR/train_log/RIFE_HDv3.py" ]]; then
    echo "$RIFE_DIR/train_log: model present, kept"
  elif [[ -n "$RIFE_MODEL_ZIP" ]]; then
    tmp="$(scratch)"
    unpack "$RIFE_MODEL_ZIP" "$tmp"
    # Zips hold flownet.pkl + RIFE_HDv3.py + IFNet_HDv3.py, in a train_log/ folder or at the top.
    src="$tmp"
    if [[ $DRY_RUN -eq 0 ]]; then src="$(dirname "$(find "$tmp" -name flownet.pkl | head -n 1)")"; fi
    run mkdir -p "$RIFE_DIR/train_log"
    run cp -r "$src/." "$RIFE_DIR/train_log/"
    if [[ $DRY_RUN -eq 0 ]]; then rm -rf "$tmp"; fi
  else
    echo "note: no Practical-RIFE model yet: download one (4.25 recommended) from the Practical-RIFE README and"
    echo "      pass --rife-model-zip ZIP, or unzip it so that $RIFE_DIR/train_log/ holds flownet.pkl and *.py"
  fi
fi

if [[ $DO_ESRGAN -eq 1 ]]; then
  clone_at "$ESRGAN_DIR" "$ESRGAN_URL" "$ESRGAN_COMMIT"
  if [[ $PIP -eq 1 ]]; then
    # ffmpeg-python, not the unrelated `ffmpeg` package (module 'ffmpeg' has no attribute 'input').
    run "$PYTHON" -m pip install "basicsr>=1.4.2" "facexlib>=0.2.5" "gfpgan>=1.3.5" ffmpeg-python numpy opencv-python \
      Pillow tqdm
    # Editable and without deps: writes realesrgan/version.py (what `setup.py develop` did) and keeps torch as is.
    run "$PYTHON" -m pip install --no-deps -e "$ESRGAN_DIR"
  fi
  # The default model (realesr-general-x4v3 mixes two weight files); upstream fetches others on first use.
  for name in realesr-general-x4v3 realesr-general-wdn-x4v3; do
    if [[ -f "$ESRGAN_DIR/weights/$name.pth" ]]; then
      echo "$ESRGAN_DIR/weights/$name.pth: present, kept"
    else
      run mkdir -p "$ESRGAN_DIR/weights"
      download "$ESRGAN_WEIGHTS/$name.pth" "$ESRGAN_DIR/weights/$name.pth"
    fi
  done
  # basicsr 1.4.2 imports torchvision.transforms.functional_tensor (gone in torchvision 0.17): the toolkit's
  # launcher shims it at run time (upstream/realesrgan/runtime/launcher.py); nothing in site-packages is edited.
fi

if [[ $DO_NCNN -eq 1 ]]; then
  if [[ -x "$NCNN_DIR/rife-ncnn-vulkan" && -f "$NCNN_DIR/rife-v4.6/flownet.param" ]]; then
    echo "$NCNN_DIR: rife-ncnn-vulkan with rife-v4.6 present, kept"
  else
    tmp="$(scratch)"
    if fetch_to "$NCNN_ZIP" "$tmp/rife-ncnn-vulkan.zip"; then
      unpack "$tmp/rife-ncnn-vulkan.zip" "$tmp"
      # The zip holds one folder, rife-ncnn-vulkan-<tag>-ubuntu/, with the binary and the model folders.
      src="$tmp/rife-ncnn-vulkan-*"
      if [[ $DRY_RUN -eq 0 ]]; then src="$(find "$tmp" -mindepth 1 -maxdepth 1 -type d | head -n 1)"; fi
      run mkdir -p "$NCNN_DIR"
      run cp -r "$src/." "$NCNN_DIR/"
      run chmod +x "$NCNN_DIR/rife-ncnn-vulkan"
    else
      echo "warning: could not get $NCNN_ZIP; pass --ncnn-zip PATH (the ncnn backend stays unavailable, cuda/ffmpeg work)" >&2
    fi
    if [[ $DRY_RUN -eq 0 ]]; then rm -rf "$tmp"; fi
  fi
  if command -v ldconfig >/dev/null && ! ldconfig -p | grep -q 'libvulkan\.so\.1'; then
    echo "note: libvulkan.so.1 not found: rife-ncnn-vulkan needs the Vulkan loader (apt-get install libvulkan1) and"
    echo "      the GPU's Vulkan driver (NVIDIA: the ICD in libnvidia-gl); run_postprocess.py --backend auto falls back otherwise"
  fi
fi

echo "finishing stages installed$([[ $DRY_RUN -eq 1 ]] && echo ' (dry run: nothing was done)')"
