#!/usr/bin/env bash
# Builds .e2e/seedvr/ for scripts/e2e_gpu.sh's seedvr mode on the lent GPU machine (no network there):
#   SeedVR/  SeedVR's code at the pinned commit (configs, common, data, models, projects, pos_emb.pt, neg_emb.pt;
#            no assets, no checkpoints: make_synthetic_seedvr.py writes those on the GPU)
#   whl/     the pure-Python packages its inference imports that the GPU image lacks: mediapy 1.2.0,
#            rotary-embedding-torch 0.5.3 (SeedVR's pins) and beartype (rotary-embedding-torch imports it)
# flash_attn, apex, IPython and PyAV are not carried: replace_actor_video/upstream/seedvr/runtime/launcher.py stands in for them.
#
#   bash scripts/build_seedvr_carry.sh [OUT]      (default .e2e/seedvr; SEEDVR_DIR = the clone, default SeedVR/)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-.e2e/seedvr}
SRC=${SEEDVR_DIR:-SeedVR}
PYTHON=${PYTHON:-python3}
[[ -f $SRC/projects/inference_seedvr2_3b.py ]] || { echo "build_seedvr_carry.sh: no SeedVR clone at $SRC" >&2; exit 2; }
rm -rf "$OUT.partial"
mkdir -p "$OUT.partial/whl" "$OUT.partial/SeedVR"
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d "$OUT.partial/whl" \
  mediapy==1.2.0 rotary-embedding-torch==0.5.3 beartype==0.23.1
tar -C "$SRC" --exclude=./assets --exclude=./ckpts --exclude=./.git -cf - . | tar -xf - -C "$OUT.partial/SeedVR"
find "$OUT.partial" -name __pycache__ -type d -prune -exec rm -rf {} +
rm -rf "$OUT"
mv "$OUT.partial" "$OUT"
du -sh "$OUT"
