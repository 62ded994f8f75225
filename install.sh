#!/usr/bin/env bash
# One-command set-up on a CUDA server: Wan2.2 clone (pinned), PyTorch first, Wan2.2's requirements plus what
# they miss, flash_attn best-effort, the Wan2.2-Animate-14B checkpoint, our own requirements, and optionally
# Practical-RIFE, Real-ESRGAN, the Web UI and the training side. Idempotent: a second run changes nothing.
#
#   ./install.sh [--no-checkpoint] [--no-rife] [--no-realesrgan] [--ui] [--training] [--fa3] [--modelscope] [--dry-run]
#
# --fa3 (Hopper GPUs: H100/H200) builds FlashAttention-3's forward kernels (scripts/build_fa3.sh, ~5-15 min),
# which the generation launcher then uses: 1.3x faster attention than cuDNN, lossless (docs/PERFORMANCE.md).
#
# Environment: WAN22_COMMIT (pinned commit to check out), TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cu128),
# PYTHON (interpreter, default python3), WAN22_DIR / WAN_ANIMATE_CKPT (where to put the clone / checkpoint).
set -euo pipefail
cd "$(dirname "$0")"

# The pin is written once, in the Wan2.2 home of the package (the mirrors and the launcher's patch sites read it too).
pin() { sed -n "s/^$2 = \"\(.*\)\"\$/\1/p" "replace_actor_video/upstream/$1/pin.py"; }
WAN22_REPO=$(pin wan REPO)
WAN22_COMMIT=${WAN22_COMMIT:-$(pin wan COMMIT)}
WAN22_DIR=${WAN22_DIR:-Wan2.2}
CKPT_DIR=${WAN_ANIMATE_CKPT:-Wan2.2-Animate-14B}
PYTHON=${PYTHON:-python3}
CHECKPOINT=1 RIFE=1 REALESRGAN=1 UI=0 TRAINING=0 FA3=0 MODELSCOPE=0 DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --no-checkpoint) CHECKPOINT=0 ;;
    --no-rife) RIFE=0 ;;
    --no-realesrgan) REALESRGAN=0 ;;
    --ui) UI=1 ;;
    --training) TRAINING=1 ;;
    --fa3) FA3=1 ;;
    --modelscope) MODELSCOPE=1 ;;
    --dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done
export DRY_RUN

# Print every command, shell-quoted so that a dry run's output can be pasted as is; run it unless --dry-run.
quote() {
  local word
  for word in "$@"; do
    if [[ $word =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then printf ' %s' "$word"; else printf ' %s' "${word@Q}"; fi
  done
}
run() { echo "+$(quote "$@")"; if [ "$DRY_RUN" = 0 ]; then "$@"; fi; }
pip_install() { run "$PYTHON" -m pip install --upgrade-strategy only-if-needed "$@"; }
have_module() { "$PYTHON" -c "import $1" >/dev/null 2>&1; }

echo "== Wan2.2 clone at ${WAN22_COMMIT:0:12} in $WAN22_DIR"
if [ -d "$WAN22_DIR/.git" ] && [ "$(git -C "$WAN22_DIR" rev-parse HEAD 2>/dev/null)" = "$WAN22_COMMIT" ]; then
  echo "   already at the pinned commit"
elif [ ! -d "$WAN22_DIR/.git" ] && [ "$(cat "$WAN22_DIR/.rav-commit" 2>/dev/null)" = "$WAN22_COMMIT" ]; then
  echo "   exported tree of the pinned commit (.rav-commit), kept"
elif [ -e "$WAN22_DIR" ] && [ ! -d "$WAN22_DIR/.git" ]; then
  echo "install.sh: $WAN22_DIR exists but is neither a git clone nor an export of the pin (.rav-commit); move it away or set WAN22_DIR" >&2
  exit 2
else
  [ -d "$WAN22_DIR/.git" ] || run git clone "$WAN22_REPO" "$WAN22_DIR"
  run git -C "$WAN22_DIR" fetch --quiet origin
  run git -C "$WAN22_DIR" checkout --quiet "$WAN22_COMMIT"
fi

echo "== PyTorch first (Wan2.2's requirements and flash_attn build against it)"
if have_module torch; then
  echo "   torch $("$PYTHON" -c 'import torch; print(torch.__version__)') already installed"
elif [ -n "${TORCH_INDEX_URL:-}" ]; then
  pip_install torch torchvision torchaudio --index-url "$TORCH_INDEX_URL"
else
  pip_install torch torchvision torchaudio
fi
# Wan2.2 runs on CUDA only: a CPU-only torch (already installed, or from a CPU index) is refused here rather than
# kept, since everything after this builds against it.
if [ "$DRY_RUN" = 0 ]; then
  read -r torch_version torch_cuda torch_gpu < <("$PYTHON" -c \
    'import torch; print(torch.__version__, torch.version.cuda or "none", torch.cuda.is_available())')
  if [ "$torch_cuda" = none ]; then
    echo "install.sh: torch $torch_version is a CPU-only build; Wan2.2 needs CUDA. Fix: $PYTHON -m pip uninstall -y" \
      "torch torchvision torchaudio, then TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 ./install.sh" \
      "(the cuXYZ your driver supports: nvidia-smi shows its CUDA version)" >&2
    exit 2
  elif [ "$torch_gpu" != True ]; then
    echo "   warning: torch $torch_version (CUDA $torch_cuda) sees no GPU: check nvidia-smi; if the driver is older" \
      "than CUDA $torch_cuda, reinstall torch with TORCH_INDEX_URL set to an older cuXYZ index"
  else
    echo "   torch $torch_version sees CUDA $torch_cuda"
  fi
else
  echo "# then: check that torch is a CUDA build that sees the GPU (stops here otherwise, naming TORCH_INDEX_URL)"
fi

echo "== Wan2.2 requirements, without the lines that break a plain install"
# flash_attn: built last and best-effort (below). The SAM-2 git line builds a CUDA extension from a 2024
# commit; the PyPI sam2 works with Wan2.2's fixed video_predictor.py (PR #158). onnxruntime: the CPU build
# would shadow onnxruntime-gpu (pose on the CPU, #219), so only the GPU build is installed. Read line by line:
# requirements.txt has no final newline, so concatenating the two files would merge two requirements.
wan22_requirements() {
  local file line
  for file in "$WAN22_DIR/requirements.txt" "$WAN22_DIR/requirements_animate.txt"; do
    while IFS= read -r line || [ -n "$line" ]; do
      line=${line%$'\r'}
      line=$(echo "$line" | sed -e 's/[[:space:]]#.*$//' -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//')
      case "$line" in
        ''|'#'*|flash_attn*|onnxruntime*|-e*github.com/facebookresearch/sam2*) ;;
        *) echo "$line" ;;
      esac
    done < "$file"
  done
}
if [ -f "$WAN22_DIR/requirements.txt" ]; then
  mapfile -t wan22_reqs < <(wan22_requirements)
  pip_install "${wan22_reqs[@]}"
else
  echo "# then: $PYTHON -m pip install each line of $WAN22_DIR/requirements.txt and requirements_animate.txt," \
    "minus flash_attn, onnxruntime and the SAM-2 git line"
fi
# What the upstream requirements miss: moviepy (#209), librosa (import wan), a diffusers with
# FluxKontextPipeline (#170), the GPU build of onnxruntime (#219), SAM2 from PyPI.
pip_install moviepy librosa "diffusers>=0.35,<0.36" dashscope loguru decord
if "$PYTHON" -m pip show onnxruntime >/dev/null 2>&1; then run "$PYTHON" -m pip uninstall -y onnxruntime; fi
pip_install onnxruntime-gpu
if ! have_module sam2; then
  pip_install sam2 || SAM2_BUILD_CUDA=0 pip_install --no-build-isolation sam2
fi

echo "== flash_attn (optional: the default attention route is torch SDPA)"
if have_module flash_attn; then
  echo "   already installed"
else
  pip_install flash-attn --no-build-isolation || echo "   flash_attn did not build; continuing with the SDPA route"
fi

if [ "$FA3" = 1 ]; then
  echo "== FlashAttention-3 forward kernels (scripts/build_fa3.sh) in .fa3/site"
  FA_DIR=${FLASH_ATTENTION_DIR:-flash-attention}
  FA_COMMIT=${FLASH_ATTENTION_COMMIT:-0251105a2fb19d2957484b7f023cd8c115286ced}
  if have_module flash_attn_interface; then
    echo "   flash_attn_interface already importable"
  else
    [ -d "$FA_DIR/.git" ] || run git clone https://github.com/Dao-AILab/flash-attention.git "$FA_DIR"
    run git -C "$FA_DIR" checkout --quiet "$FA_COMMIT"
    run git -C "$FA_DIR" submodule update --init csrc/cutlass
    # --varlen: upstream's own FA3 call (flash_attn_varlen_func) works too, not only our launcher's dense one
    run bash scripts/build_fa3.sh --src "$FA_DIR" --out .fa3/site --varlen --jobs "$(nproc)"
    # a .pth file puts .fa3/site on the interpreter's path: the generation subprocess imports it like a package
    site_dir=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    run "$PYTHON" -c 'import sys; open(sys.argv[1], "w").write(sys.argv[2] + "\n")' \
      "$site_dir/replace_actor_video_fa3.pth" "$PWD/.fa3/site"
  fi
fi

echo "== our own requirements"
pip_install -r requirements.txt
if [ "$UI" = 1 ]; then pip_install -r requirements-ui.txt; fi

if [ "$CHECKPOINT" = 1 ]; then
  echo "== Wan2.2-Animate-14B checkpoint in $CKPT_DIR (~70 GB, resumable)"
  if [ "$MODELSCOPE" = 1 ]; then
    pip_install modelscope
    run modelscope download Wan-AI/Wan2.2-Animate-14B --local_dir "$CKPT_DIR"
  else
    pip_install "huggingface_hub[cli]>=0.34"
    run hf download Wan-AI/Wan2.2-Animate-14B --local-dir "$CKPT_DIR"
  fi
fi

finishing_args=(--python "$PYTHON")
[ "$RIFE" = 1 ] || finishing_args+=(--no-rife)
[ "$REALESRGAN" = 1 ] || finishing_args+=(--no-realesrgan)
[ "$DRY_RUN" = 1 ] && finishing_args+=(--dry-run)
echo "== finishing tools: Practical-RIFE, Real-ESRGAN, rife-ncnn-vulkan (scripts/install_finishing.sh)"
bash scripts/install_finishing.sh "${finishing_args[@]}"
if [ "$TRAINING" = 1 ]; then
  echo "== training side: DiffSynth-Studio (scripts/install_training.sh)"
  bash scripts/install_training.sh $([ "$DRY_RUN" = 1 ] && echo --dry-run)
fi

echo "== done. Check the set-up with: $PYTHON pipeline.py --doctor"
