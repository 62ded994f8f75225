#!/usr/bin/env bash
# Training side: DiffSynth-Studio at the commit our adapter and its parser mirror were checked against,
# installed editable, plus accelerate (and DeepSpeed on request). Called by install.sh --training.
#
#   scripts/install_training.sh [--dir DiffSynth-Studio] [--commit SHA] [--python python3]
#                               [--deepspeed] [--no-pip] [--dry-run]
set -euo pipefail

# The pin (and why not a newer commit) is written once: replace_actor_video/upstream/diffsynth/pin.py.
pin() { sed -n "s/^$1 = \"\(.*\)\"\$/\1/p" "$(dirname "$0")/../replace_actor_video/upstream/diffsynth/pin.py"; }
REPO_URL="$(pin REPO)"
COMMIT="$(pin COMMIT)"
DIR="${DIFFSYNTH_DIR:-DiffSynth-Studio}"
PYTHON="python3"
DEEPSPEED=0
PIP=1
DRY_RUN=0

usage() { sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --dir) DIR="$2"; shift 2 ;;
    --commit) COMMIT="$2"; shift 2 ;;
    --python) PYTHON="$2"; shift 2 ;;
    --deepspeed) DEEPSPEED=1; shift ;;
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

if [[ ! -d "$DIR/.git" && -f "$DIR/.rav-commit" && "$(cat "$DIR/.rav-commit")" == "$COMMIT" ]]; then
  # An exported tree of the pinned commit (e.g. copied to a machine without GitHub access): keep it.
  echo "$DIR: exported tree of ${COMMIT:0:7}, kept"
else
  if [[ -d "$DIR/.git" ]]; then
    if [[ $DRY_RUN -eq 0 && -n "$(git -C "$DIR" status --porcelain --untracked-files=no)" ]]; then
      echo "error: $DIR has local changes; commit or stash them, or pass --dir for a fresh clone" >&2
      exit 2
    fi
  elif [[ -e "$DIR" ]]; then
    echo "error: $DIR exists and is neither a git clone nor an export of ${COMMIT:0:7} (.rav-commit); remove it or pass --dir" >&2
    exit 2
  else
    run git init -q "$DIR"
    run git -C "$DIR" remote add origin "$REPO_URL"
  fi
  # One commit, shallow: the pinned one, whatever the default branch has moved to since.
  run git -C "$DIR" fetch -q --depth 1 origin "$COMMIT"
  run git -C "$DIR" checkout -q --detach "$COMMIT"
fi

if [[ $PIP -eq 1 ]]; then
  # Editable, so train.py and the diffsynth package stay the files of this clone.
  run "$PYTHON" -m pip install -e "$DIR"
  # librosa: train.py builds its audio loader for every dataset (train.py:154), pyproject lists it only as extra.
  run "$PYTHON" -m pip install "accelerate>=1.10" "peft" "PyYAML>=6" "librosa"
  if [[ $DEEPSPEED -eq 1 ]]; then
    # Only for --strategy zero2 / zero3; it compiles its ops on first use and needs nvcc.
    run "$PYTHON" -m pip install deepspeed
  fi
fi
echo "DiffSynth-Studio ready in $DIR at ${COMMIT:0:7}$([[ $DRY_RUN -eq 1 ]] && echo ' (dry run: nothing was done)')"
