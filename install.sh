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

# Print every command; run it unless --dry-run.
run() { echo "+ $*"; if [ "$DRY_RUN" = 0 ]; then "$@"; fi; }
pip_install() { run "$PYTHON" -m pip install --upgrade-strategy only-if-needed "$@"; }
have_module() { "$PYTHON" -c "import $1" >/dev/null 2>&1; }

echo "== Wan2.2 clone at ${WAN22_COMMIT:0:12} in $WAN22_DIR"
if [ -d "$WAN22_DIR/.git" ] && [ "$(git -C "$WAN22_DIR" rev-parse HEAD 2>/dev/null)" = "$WAN22_COMMIT" ]; then
  echo "   already at the pinned commit"
elif [ -e "$WAN22_DIR" ] && [ ! -d "$WAN22_DIR/.git" ]; then
  echo "install.sh: $WAN22_DIR exists but is not a git clone; move it away or set WAN22_DIR" >&2
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

echo "== Wan2.2 requirements, without the lines that break a plain install"
# flash_attn: built last and best-effort (below). The SAM-2 git line builds a CUDA extension from a 2024
# commit; the PyPI sam2 works with Wan2.2's fixed video_predictor.py (PR #158). onnxruntime: the CPU build
# would shadow onnxruntime-gpu (pose on the CPU, #219), so only the GPU build is installed.
filtered=$(mktemp)
trap 'rm -f "$filtered"' EXIT
if [ -f "$WAN22_DIR/requirements.txt" ]; then
  cat "$WAN22_DIR/requirements.txt" "$WAN22_DIR/requirements_animate.txt" | tr -d '\r' \
    | grep -v -E '^\s*(flash_attn|onnxruntime|-e\s+git\+https://github.com/facebookresearch/sam2)' > "$filtered"
  pip_install -r "$filtered"
else
  echo "+ $PYTHON -m pip install -r <Wan2.2 requirements.txt + requirements_animate.txt, minus flash_attn and the SAM-2 git line>"
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
    if [ "$DRY_RUN" = 0 ]; then echo "$PWD/.fa3/site" > "$site_dir/replace_actor_video_fa3.pth"; fi
    echo "+ echo $PWD/.fa3/site > $site_dir/replace_actor_video_fa3.pth"
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
