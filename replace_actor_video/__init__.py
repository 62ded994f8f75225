"""replace-actor-video: Wan2.2-Animate-14B animate/replace pipeline driven through the official upstream CLIs."""

__version__ = "0.1.0"
