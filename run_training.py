#!/usr/bin/env python3
"""Train Wan2.2-Animate-14B (LoRA or the animate adapter) with DiffSynth-Studio through accelerate. See
docs/TRAINING.md, or --help."""

import sys

from replace_actor_video.training.launch import main

if __name__ == "__main__":
    sys.exit(main())
