#!/usr/bin/env python3
"""All stages in one command, resumable; `--doctor` checks the set-up. See README.md, or --help."""

import sys

from replace_actor_video.pipeline.run import main

if __name__ == "__main__":
    sys.exit(main())
