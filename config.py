"""Shared configuration: where upstream clones, checkpoints and runs live (flag > environment variable >
folder in the current directory). The definitions are in replace_actor_video/core/config.py; defaults for
any pipeline option can also come from a TOML file: `python pipeline.py --config my.toml ...`."""

from replace_actor_video.core.config import (  # noqa: F401
    ALL_UPSTREAMS, CHECKPOINT, DIFFSYNTH, PRACTICAL_RIFE, REALESRGAN, RUNS, SEEDVR, WAN22, Location, upstream_commit)

if __name__ == "__main__":
    for location in (*ALL_UPSTREAMS, RUNS):
        print(f"{location.what:32} {location.flag:20} ${location.env:20} -> {location.default_value()}")
