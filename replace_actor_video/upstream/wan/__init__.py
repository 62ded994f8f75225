"""Wan2.2 (Wan-Video/Wan2.2): the Animate-14B preprocessing and generation, see upstream/__init__.py for the
shape of a home. `runtime/` is the launcher that runs generate.py with our patches, in Wan2.2's Python."""
