#!/usr/bin/env python3
"""Stage 2: generation (official Wan2.2 generate.py --task animate-14B). See README.md, or --help."""

import sys

from replace_actor_video.stages.generate import main

if __name__ == "__main__":
    sys.exit(main())
