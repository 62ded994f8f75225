"""DiffSynth-Studio's Wan training script (train.py: its CLI, checkpoint files, dataset columns, traps)."""
