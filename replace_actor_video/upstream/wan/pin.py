"""The Wan2.2 commit everything here was written and checked against: the clone install.sh checks out, the
commit the mirrors copy and the launcher's patch sites (runtime/patch_sites.py) were read at."""

REPO = "https://github.com/Wan-Video/Wan2.2.git"
COMMIT = "42bf4cfaa384bc21833865abc2f9e6c0e67233dc"
