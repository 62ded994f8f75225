"""Upscaling with Real-ESRGAN's inference_realesrgan_video.py (video.py), run through runtime/launcher.py."""
