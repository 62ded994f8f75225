#!/usr/bin/env python3
"""Stage 4 (optional): upscaling with SeedVR2 or Real-ESRGAN, audio kept. See README.md, or --help."""

import sys

from replace_actor_video.stages.upscale import main

if __name__ == "__main__":
    sys.exit(main())
