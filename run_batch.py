"""Many pipeline runs from a CSV or TOML list of jobs, on Ray (local, or a cluster with --address). See
docs/SCALE.md, or --help."""

import sys

from replace_actor_video.batch.run import main

if __name__ == "__main__":
    sys.exit(main())
