"""Code that runs inside SeedVR's Python (launcher.py, started as a file under torchrun): standard library, torch
and numpy only, no import of this package."""
