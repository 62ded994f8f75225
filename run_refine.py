#!/usr/bin/env python3
"""Refine (optional): a second replace pass over a generated video. See README.md, or --help."""

import sys

from replace_actor_video.pipeline.refine import main

if __name__ == "__main__":
    sys.exit(main())
