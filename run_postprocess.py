#!/usr/bin/env python3
"""Stage 3 (optional): frame interpolation to an exact higher fps (RIFE or ffmpeg). See README.md, or --help."""

import sys

from replace_actor_video.stages.postprocess import main

if __name__ == "__main__":
    sys.exit(main())
