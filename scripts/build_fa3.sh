#!/usr/bin/env bash
# Build FlashAttention-3 (flash-attention/hopper) for inference on Hopper GPUs, in minutes instead of hours:
# forward kernels only, head dim 128 (Wan's), bf16 + FP8 (e4m3), sm_90a. The result is the `flash_attn_3`
# package plus `flash_attn_interface.py` in OUT (add OUT to PYTHONPATH), which the generation launcher's
# `--attention auto|fa3|fa3-fp8` picks up. It links against torch's stable C ABI (torch >= 2.9) and Python's
# limited API, so one build serves every torch >= 2.9 and Python >= 3.9 with the same CUDA major version.
#
#   bash scripts/build_fa3.sh --src flash-attention [--out .fa3/site] [--varlen] [--jobs N] [--dry-run]
#
# --src      a flash-attention checkout with its csrc/cutlass submodule (install.sh --fa3 clones both)
# --out      where the package goes (default .fa3/site)
# --varlen   also build the variable-length kernels: needed only when upstream's own FA3 call
#            (flash_attn_varlen_func, `--attention flash` with FA3 installed) should work too
# --torch    a torch package folder (with include/ and lib/) to build against; default: the one `python3` imports
# --dry-run  print the commands, run nothing
# Needs nvcc >= 12.3 (CUDA_HOME or /usr/local/cuda) and g++. ~2 GB RAM per job; ~5 min on 2 cores.
set -euo pipefail

SRC="" OUT=".fa3/site" VARLEN=0 JOBS=2 DRY=0 TORCH_DIR=""
while [ $# -gt 0 ]; do
  case "$1" in
    --src) SRC="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --varlen) VARLEN=1; shift ;;
    --jobs) JOBS="$2"; shift 2 ;;
    --torch) TORCH_DIR="$2"; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "build_fa3.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "build_fa3.sh: $*" >&2; exit 2; }
[ -n "$SRC" ] || die "--src is required: a flash-attention checkout (git clone --recursive https://github.com/Dao-AILab/flash-attention)"
[ -d "$SRC" ] || die "--src $SRC: no such folder (a flash-attention checkout)"
HOPPER="$(cd "$SRC" && pwd)/hopper"
[ -f "$HOPPER/flash_api_stable.cpp" ] || die "$SRC has no hopper/flash_api_stable.cpp: not a flash-attention checkout new enough for the stable ABI"
CUTLASS="$(dirname "$HOPPER")/csrc/cutlass/include"
[ -d "$CUTLASS/cute" ] || die "$SRC/csrc/cutlass is empty: run git submodule update --init csrc/cutlass there"
CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
NVCC="$CUDA_HOME/bin/nvcc"
[ -x "$NVCC" ] || [ "$DRY" = 1 ] || die "no nvcc at $NVCC: install the CUDA toolkit (>= 12.3) or set CUDA_HOME"
if [ -z "$TORCH_DIR" ]; then
  TORCH_DIR="$(python3 -c 'import os, torch; print(os.path.dirname(torch.__file__))' 2>/dev/null)" \
    || die "python3 cannot import torch: pass --torch DIR (an unpacked torch wheel's torch/ folder)"
fi
[ -d "$TORCH_DIR/include/torch/csrc/stable" ] || die "$TORCH_DIR has no include/torch/csrc/stable: torch >= 2.9 is needed"
PY_INCLUDE="$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["include"])')"

# Every optional feature off but head dim 128, bf16 and FP8: Wan's DiT needs nothing else.
FEATURES=(BACKWARD SPLIT PAGEDKV APPENDKV LOCAL SOFTCAP PACKGQA FP16 CLUSTER HDIM64 HDIM96 HDIM192 HDIM256 SM8x)
[ "$VARLEN" = 1 ] || FEATURES+=(VARLEN)
DEFINES=()
for feature in "${FEATURES[@]}"; do DEFINES+=("-DFLASHATTENTION_DISABLE_$feature"); done
DEFINES+=(-DFLASH_ATTENTION_DISABLE_HDIMDIFF64 -DFLASH_ATTENTION_DISABLE_HDIMDIFF192
          -DTORCH_EXTENSION_NAME=_C -D_GLIBCXX_USE_CXX11_ABI=1
          -DPy_LIMITED_API=0x03090000 -DTORCH_TARGET_VERSION=0x0209000000000000)
INCLUDES=(-I"$HOPPER" -I"$CUTLASS" -I"$TORCH_DIR/include" -I"$CUDA_HOME/include" -I"$CUDA_HOME/include/cccl"
          -I"$PY_INCLUDE")
# The flags of flash-attention's hopper/setup.py for sm90 sources.
NVCC_FLAGS=(-O3 -std=c++17 --use_fast_math -DCUTE_SM90_EXTENDED_MMA_SHAPES_ENABLED -DCUTLASS_ENABLE_GDC_FOR_SM90
            -DCUTLASS_DEBUG_TRACE_LEVEL=0 -DNDEBUG --expt-relaxed-constexpr --expt-extended-lambda -Xcompiler -fPIC
            -D__CUDA_NO_HALF_OPERATORS__ -D__CUDA_NO_HALF_CONVERSIONS__ -D__CUDA_NO_BFLOAT16_CONVERSIONS__
            -D__CUDA_NO_HALF2_OPERATORS__ -gencode arch=compute_90a,code=sm_90a)

BUILD="$OUT/.build"
run() { echo "+ $*"; [ "$DRY" = 1 ] || "$@"; }
compile_cu() {  # source object
  [ -f "$2" ] && return 0
  run "$NVCC" "${NVCC_FLAGS[@]}" "${DEFINES[@]}" "${INCLUDES[@]}" -c "$HOPPER/$1" -o "$2.tmp"
  [ "$DRY" = 1 ] || mv "$2.tmp" "$2"
}
run mkdir -p "$BUILD" "$OUT/flash_attn_3"
SOURCES=(instantiations/flash_fwd_hdim128_bf16_sm90.cu instantiations/flash_fwd_hdim128_e4m3_sm90.cu
         flash_prepare_scheduler.cu)
OBJECTS=()
pids=()
for source in "${SOURCES[@]}"; do
  object="$BUILD/$(basename "$source" .cu).o"
  OBJECTS+=("$object")
  if [ "$DRY" = 1 ] || [ "$JOBS" -le 1 ]; then
    compile_cu "$source" "$object"
  else
    compile_cu "$source" "$object" & pids+=($!)
    if [ "${#pids[@]}" -ge "$JOBS" ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
  fi
done
for pid in "${pids[@]}"; do wait "$pid"; done
run g++ -O3 -std=c++17 -fPIC "${DEFINES[@]}" "${INCLUDES[@]}" -c "$HOPPER/flash_api_stable.cpp" -o "$BUILD/flash_api.o"
run g++ -shared -o "$OUT/flash_attn_3/_C.abi3.so" "$BUILD/flash_api.o" "${OBJECTS[@]}" \
    -L"$CUDA_HOME/lib64" -lcudart -L"$TORCH_DIR/lib" -ltorch -ltorch_cpu -lc10 -ltorch_cuda -lc10_cuda
run cp "$HOPPER/flash_attn_3/__init__.py" "$OUT/flash_attn_3/__init__.py"
run cp "$HOPPER/flash_attn_interface.py" "$OUT/flash_attn_interface.py"
# flash_attn_interface reads the build flags from flash_attn_config (hopper/setup.py writes it the same way).
FLAGS=""
for feature in "${FEATURES[@]}"; do FLAGS+="'FLASHATTENTION_DISABLE_$feature': True, "; done
FLAGS+="'FLASHATTENTION_DISABLE_HDIM128': False, 'FLASHATTENTION_DISABLE_FP8': False"
if [ "$VARLEN" = 1 ]; then FLAGS+=", 'FLASHATTENTION_DISABLE_VARLEN': False"; fi
CONFIG="CONFIG = {'build_flags': {$FLAGS}}"
echo "+ write $OUT/flash_attn_config.py"
[ "$DRY" = 1 ] || printf '%s\n' "$CONFIG" > "$OUT/flash_attn_config.py"
[ "$DRY" = 1 ] || rm -rf "$BUILD"
echo "FlashAttention-3 (forward, hdim 128, bf16 + fp8) in $OUT: export PYTHONPATH=$(cd "$OUT" 2>/dev/null && pwd || echo "$OUT"):\$PYTHONPATH"
