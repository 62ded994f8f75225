"""Upscaling with SeedVR2's projects/inference_seedvr2_{3b,7b}.py (inference.py), run by torchrun in SeedVR's
own environment."""
