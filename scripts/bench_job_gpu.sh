#!/usr/bin/env bash
# One device call of the whole-job benchmark on the lent GPU machine (carry [".e2e"], built by
# scripts/build_gpu_carry.sh): sets up what the image lacks as scripts/e2e_gpu.sh does (wheels into /tmp/site,
# ffmpeg/ffprobe into /tmp/bin; kept on a warm machine), chooses where the 55 GB checkpoint lives (/dev/shm when it
# has room, else /tmp; reused by later calls), runs scripts/bench_job.py with the given rows, and copies the report
# (appended across calls in /tmp/bench_job/report) to OUT_DIR however the call ends.
#
#   bash scripts/bench_job_gpu.sh OUT_DIR --rows default-4,fast-cold [--budget_s 500] [other bench_job.py options]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=$(realpath -m "${1:?usage: bench_job_gpu.sh OUT_DIR [bench_job.py options]}"); shift
CARRY=$(realpath -m "${E2E_CARRY:-.e2e}")  # absolute: bench_job.py runs the pipeline from its work folder
REPORT=/tmp/bench_job/report
mkdir -p "$OUT" "$REPORT" /tmp/bin
trap 'cp -r "$REPORT/." "$OUT/" 2>/dev/null' EXIT

if [ ! -f /tmp/site/.rav-complete ]; then
  rm -rf /tmp/site
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "$CARRY"/whl/*.whl && touch /tmp/site/.rav-complete
fi
[ -x /tmp/bin/ffprobe ] || tar -xJf "$CARRY/ffbins.tar.xz" -C /tmp/bin
export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH} PATH=/tmp/bin:$PATH IMAGEIO_FFMPEG_EXE=/tmp/bin/ffmpeg

CKPT=${BENCH_CKPT:-}
if [ -z "$CKPT" ]; then
  for dir in /dev/shm /tmp; do
    if [ -f "$dir/bench_ckpt/process_checkpoint/sam2/sam2_hiera_large.pt" ]; then CKPT=$dir/bench_ckpt; break; fi
  done
fi
if [ -z "$CKPT" ]; then
  shm_free=$(df -BG --output=avail /dev/shm 2>/dev/null | tail -n 1 | tr -dc 0-9)
  if [ "${shm_free:-0}" -ge 60 ]; then CKPT=/dev/shm/bench_ckpt; else CKPT=/tmp/bench_ckpt; fi
fi
{ nvidia-smi --query-gpu=name,memory.total --format=csv,noheader; df -h /tmp /dev/shm | sed 1d; free -g | sed -n 2p
  echo "checkpoint: $CKPT"; } | tee "$REPORT/machine.txt"

python3 scripts/bench_job.py --out "$REPORT" --work /tmp/bench_job/work --ckpt "$CKPT" --wan22_dir "$CARRY/Wan2.2" \
  --onnx_from "$CARRY/onnx" "$@"
