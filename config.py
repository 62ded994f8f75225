"""Shared configuration: where upstream clones, checkpoints and runs live (flag > environment variable >
folder in the current directory). The definitions are in replace_actor_video/core/config.py; defaults for
any pipeline option can also come from a TOML file: `python pipeline.py --config my.toml ...`."""

import sys

from replace_actor_video.core.config import (  # noqa: F401
    ALL_UPSTREAMS,
    CHECKPOINT,
    DIFFSYNTH,
    PRACTICAL_RIFE,
    REALESRGAN,
    RUNS,
    SEEDVR,
    WAN22,
    Location,
    main,
    upstream_commit,
)

if __name__ == "__main__":
    sys.exit(main())
