#!/usr/bin/env bash
# End-to-end through the REAL upstream Wan2.2 code on a GPU machine, with a synthetic checkpoint (random
# weights, real layout): pipeline.py in animate and replace mode on a short generated clip, then every
# output checked (files, frame counts, fps, audio). See docs/E2E.md for how it is run and what it showed.
#
#   bash scripts/e2e_gpu.sh OUT_DIR [animate] [replace]
#
# Expects, relative to the repo root (gitignored, carried to the lent GPU machine; scripts/gpu_carry.md says
# how to build them): .e2e/whl/*.whl (Python packages the GPU image lacks), .e2e/ffbins.tar.xz (static
# ffmpeg + ffprobe), .e2e/Wan2.2 (a Wan2.2 checkout). On a normal set-up (install.sh done) set
# E2E_SETUP=0 and WAN22_DIR instead.
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
  if [ ! -d /tmp/site ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$CARRY"/whl/*.whl
  fi
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
  [ -x "$WORK/bin/ffprobe" ] || tar -xJf "$CARRY/ffbins.tar.xz" -C "$WORK/bin"
  export PATH=$WORK/bin:$PATH IMAGEIO_FFMPEG_EXE=$WORK/bin/ffmpeg
fi
stamp "setup done; $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | head -1)"

if [ ! -f "$WORK/ckpt/config.json" ]; then
  python3 scripts/make_synthetic_checkpoint.py --out "$WORK/ckpt" --profile tiny 2>&1 | tail -n 5
fi
stamp "synthetic checkpoint ready: $(du -sh "$WORK/ckpt" | cut -f1)"

# A 2 s, 24 fps, 480x272 clip with a tone, and a reference image: preprocessing samples it at 16 fps, so the
# result must come back at 16 fps with 32 frames and audio (generate.py itself always writes 30 fps).
ffmpeg -v error -y -f lavfi -i "testsrc2=size=480x272:rate=24" -f lavfi -i "sine=frequency=330" -t 2 \
  -c:v libx264 -pix_fmt yuv420p -c:a aac "$WORK/clip.mp4"
ffmpeg -v error -y -f lavfi -i "testsrc=size=272x480" -frames:v 1 "$WORK/ref.png"

status=0
for mode in $MODES; do
  flag=(); [ "$mode" = replace ] && flag=(--replace --use_relighting_lora)
  stamp "pipeline $mode: start"
  if PYTHONUNBUFFERED=1 python3 pipeline.py --video_path "$WORK/clip.mp4" --refer_path "$WORK/ref.png" "${flag[@]}" \
      --resolution 480x272 --fps 16 --sample_steps 2 --prompt "a robot dancing on a stage" --seed 1 \
      --wan22_dir "$WAN22" --ckpt_dir "$WORK/ckpt" --runs_dir "$WORK/runs" --output_path "$OUT/$mode.mp4" \
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
