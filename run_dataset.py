#!/usr/bin/env python3
"""Training data: official preprocessing per video, clips and metadata.csv for DiffSynth-Studio. See
docs/TRAINING.md, or --help."""

import sys

from replace_actor_video.training.dataset import main

if __name__ == "__main__":
    sys.exit(main())
