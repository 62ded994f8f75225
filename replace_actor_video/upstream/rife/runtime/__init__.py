"""Code that runs inside Practical-RIFE's Python (launcher.py, started as a file): standard library only at
import time, no import of this package."""
