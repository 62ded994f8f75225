#!/usr/bin/env python3
"""Contour mask on an existing replace-mode preprocessing folder (SAM2 by points → grow → blockify)."""

import sys

from replace_actor_video.stages.mask import main

if __name__ == "__main__":
    sys.exit(main())
