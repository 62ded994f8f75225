#!/usr/bin/env python3
"""Stage 1: preprocessing (official Wan2.2 preprocess_data.py). See README.md, or --help."""

import sys

from replace_actor_video.stages.preprocess import main

if __name__ == "__main__":
    sys.exit(main())
