#!/usr/bin/env python3
"""Web UI (Gradio) for every stage: `pip install -r requirements-ui.txt`, then `python app_ui.py`. See docs/UI.md."""

import sys

from replace_actor_video.ui.app import main

if __name__ == "__main__":
    sys.exit(main())
