#!/usr/bin/env bash
# End-to-end through the REAL upstream Wan2.2 code on a GPU machine, with a synthetic checkpoint (random
# weights, real layout): pipeline.py in animate and replace mode on a short generated clip, then every
# output checked (files, frame counts, fps, audio). See docs/E2E.md for how it is run and what it showed.
#
#   bash scripts/e2e_gpu.sh OUT_DIR [animate] [replace] [refine] [seedvr] [mask720]
#
# mask720: replace-mode preprocessing of a 3 s 1280x720 clip with the contour mask (SAM2-L-shaped random
# weights), reporting the contour step's frames per second (issue 4).
# refine: run_refine.py (a second replace pass through the official preprocess_data.py and generate.py) over
# OUT_DIR/replace.mp4 (run `replace` first, in this call or an earlier one on the warm machine).
# seedvr: run_upscale.py --backend seedvr through SeedVR's official inference_seedvr2_3b.py with a synthetic 3B
# checkpoint of the real layout (scripts/make_synthetic_seedvr.py, written on the GPU), flash_attn/apex/PyAV stood in
# by upstream/seedvr/runtime/launcher.py; needs .e2e/seedvr (scripts/build_seedvr_carry.sh: SeedVR's code + 3 small wheels).
#
# Expects, relative to the repo root (gitignored, carried to the lent GPU machine; `bash scripts/build_gpu_carry.sh`
# builds them, scripts/gpu_carry.md says why each part is there): .e2e/whl/*.whl (Python packages the GPU image
# lacks), .e2e/ffbins.tar.xz (static ffmpeg + ffprobe), .e2e/Wan2.2 (the Wan2.2 code at the pin). On a normal
# set-up (install.sh done) set E2E_SETUP=0 and WAN22_DIR instead.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${1:?usage: e2e_gpu.sh OUT_DIR [animate] [replace]}"); shift
MODES=${*:-animate replace}
CARRY=${E2E_CARRY:-.e2e}
WORK=${E2E_WORK:-/tmp/e2e}
WAN22=${WAN22_DIR:-$CARRY/Wan2.2}
mkdir -p "$OUT" "$WORK/bin"
t0=$(date +%s)
stamp() { echo "[e2e $(( $(date +%s) - t0 ))s] $*" | tee -a "$OUT/summary.txt"; }

if [ "${E2E_SETUP:-1}" = 1 ]; then
  rm -rf /tmp/site
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$CARRY"/whl/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  [ -x "$WORK/bin/ffprobe" ] || tar -xJf "$CARRY/ffbins.tar.xz" -C "$WORK/bin"
  export PATH=$WORK/bin:$PATH IMAGEIO_FFMPEG_EXE=$WORK/bin/ffmpeg
fi
stamp "setup done; $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1)"

CKPT=$WORK/ckpt
# the onnx package is not on the GPU image: the two ONNX graphs travel in the carry (make_synthetic_checkpoint.py
# --write_onnx .e2e/onnx on the CPU side)
ONNX_FROM=(); [ -d "$CARRY/onnx" ] && ONNX_FROM=(--onnx_from "$CARRY/onnx")
if [ -f "$CKPT/process_checkpoint/sam2/sam2_hiera_large.pt" ]; then  # written last
  :
elif [ "$MODES" = mask720 ]; then  # preprocessing only: the light parts and SAM2 are enough
  CKPT=$WORK/ckpt_light
  if [ ! -f "$CKPT/process_checkpoint/sam2/sam2_hiera_large.pt" ]; then
    python3 scripts/make_synthetic_checkpoint.py --out "$CKPT" --profile tiny --skip_heavy "${ONNX_FROM[@]}" 2>&1 | tail -n 5
    python3 -c "import sys; from pathlib import Path; sys.path.insert(0, 'scripts'); from synthetic.sam2_file import write_sam2; write_sam2(Path(sys.argv[1]))" "$CKPT"
  fi
else
  python3 scripts/make_synthetic_checkpoint.py --out "$CKPT" --profile tiny "${ONNX_FROM[@]}" 2>&1 | tail -n 5
fi
stamp "synthetic checkpoint ready: $(du -sh "$CKPT" | cut -f1)"

# A 2 s, 24 fps, 480x272 clip with a tone, and a reference image: preprocessing samples it at 16 fps, so the
# result must come back at 16 fps with 32 frames and audio (generate.py itself always writes 30 fps).
ffmpeg -v error -y -f lavfi -i "testsrc2=size=480x272:rate=24" -f lavfi -i "sine=frequency=330" -t 2 \
  -c:v libx264 -pix_fmt yuv420p -c:a aac "$WORK/clip.mp4"
ffmpeg -v error -y -f lavfi -i "testsrc=size=272x480" -frames:v 1 "$WORK/ref.png"

status=0
for mode in $MODES; do
  if [ "$mode" = refine ]; then
    stamp "refine: second replace pass over $OUT/replace.mp4"
    if PYTHONUNBUFFERED=1 python3 run_refine.py --input "$OUT/replace.mp4" --refer_path "$WORK/ref.png" \
        --save_file "$OUT/refined.mp4" --save_path "$WORK/refine_pp" --resolution 480x272 --sample_steps 2 --seed 1 \
        --wan22_dir "$WAN22" --ckpt_dir "$CKPT" --runs_dir "$WORK/runs" --overwrite > "$OUT/refine.log" 2>&1; then
      stamp "refine: exit 0"; grep -h "rav-launcher\|refine done\|exit code" "$OUT/refine.log" | tail -n 5 | tee -a "$OUT/summary.txt"
    else
      status=1; stamp "refine: FAILED"; tail -n 30 "$OUT/refine.log" | tee -a "$OUT/summary.txt"
    fi
    continue
  fi
  if [ "$mode" = seedvr ]; then
    SV=$WORK/SeedVR
    if [ "${E2E_SETUP:-1}" = 1 ]; then
      python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$CARRY"/seedvr/whl/*.whl
      [ -d "$SV" ] || cp -a "$CARRY/seedvr/SeedVR" "$SV"
    fi
    if [ ! -f "$SV/ckpts/ema_vae.pth" ]; then
      stamp "seedvr: writing the synthetic SeedVR2-3B checkpoint (cuda)"
      python3 scripts/make_synthetic_seedvr.py --seedvr_dir "$SV" --model 3b --device cuda 2>&1 | tail -n 3 \
        | tee -a "$OUT/summary.txt"
    fi
    stamp "seedvr: run_upscale.py --backend seedvr (3b, 1 GPU) on the 2 s 480x272 clip"
    if PYTHONUNBUFFERED=1 python3 run_upscale.py --input "$WORK/clip.mp4" --output "$OUT/seedvr.mp4" \
        --backend seedvr --model 3b --seedvr_dir "$SV" --res_h 272 --res_w 480 --runs_dir "$WORK/runs" \
        --overwrite > "$OUT/seedvr.log" 2>&1; then
      stamp "seedvr: exit 0"; grep -h "rav-seedvr\|upscale done" "$OUT/seedvr.log" | tee -a "$OUT/summary.txt"
    else
      status=1; stamp "seedvr: FAILED"; tail -n 30 "$OUT/seedvr.log" | tee -a "$OUT/summary.txt"
    fi
    continue
  fi
  if [ "$mode" = mask720 ]; then
    ffmpeg -v error -y -f lavfi -i "testsrc2=size=1280x720:rate=30" -f lavfi -i "sine=frequency=330" -t 3 \
      -c:v libx264 -pix_fmt yuv420p -c:a aac "$WORK/clip720.mp4"
    stamp "mask720: replace-mode preprocessing + contour mask on a 3 s 1280x720 30 fps clip"
    if PYTHONUNBUFFERED=1 python3 run_preprocessing.py --replace --video_path "$WORK/clip720.mp4" \
        --refer_path "$WORK/ref.png" --resolution 1280x720 --save_path "$WORK/pp720" --overwrite \
        --wan22_dir "$WAN22" --ckpt_dir "$CKPT" --runs_dir "$WORK/runs" > "$OUT/mask720.log" 2>&1; then
      grep -h "contour mask:\|exit code" "$OUT/mask720.log" | tee -a "$OUT/summary.txt"
    else
      status=1; stamp "mask720: FAILED"; tail -n 30 "$OUT/mask720.log" | tee -a "$OUT/summary.txt"
    fi
    continue
  fi
  flag=(); [ "$mode" = replace ] && flag=(--replace --use_relighting_lora)
  stamp "pipeline $mode: start"
  if PYTHONUNBUFFERED=1 python3 pipeline.py --video_path "$WORK/clip.mp4" --refer_path "$WORK/ref.png" "${flag[@]}" \
      --resolution 480x272 --fps 16 --sample_steps 2 --prompt "a robot dancing on a stage" --seed 1 \
      --wan22_dir "$WAN22" --ckpt_dir "$CKPT" --runs_dir "$WORK/runs" --output_path "$OUT/$mode.mp4" \
      --overwrite --force > "$OUT/$mode.log" 2>&1; then
    stamp "pipeline $mode: exit 0"
  else
    status=1; stamp "pipeline $mode: FAILED (tail below)"; tail -n 30 "$OUT/$mode.log" | tee -a "$OUT/summary.txt"
    continue
  fi
  cp "$WORK/runs/$mode/manifest.json" "$OUT/$mode-manifest.json"
  cat "$WORK/runs/$mode/logs/"*.log > "$OUT/$mode-upstream.log"
  grep -h "rav-launcher\|Generating video\|Finished" "$OUT/$mode-upstream.log" | tee -a "$OUT/summary.txt" || true
  python3 - "$OUT/$mode.mp4" <<'PY' | tee -a "$OUT/summary.txt" || status=1
import sys
from replace_actor_video.media.probe import probe_video
info = probe_video(sys.argv[1], count_frames=True)
ok = info.fps == 16 and info.frames == 32 and info.has_audio and abs(info.duration - 2.0) <= 1 / 16
print(f"{sys.argv[1]}: {info.width}x{info.height} {info.fps} fps {info.frames} frames {info.duration:.3f}s "
      f"audio={info.has_audio} -> {'OK' if ok else 'WRONG'}")
sys.exit(0 if ok else 1)
PY
done
stamp "done, status $status"
exit $status
