"""Code that runs inside Wan2.2's own interpreter, not ours: launcher.py is started as a file
(`python launcher.py ...`, or under torchrun) and loads rope.py, lora.py, patch_sites.py, fastload.py, timing.py,
clip_color.py, color_match.py and memory.py beside it by path. Standard library, torch and numpy only (what upstream
needs anyway), and no import of this package: the upstream environment has neither our dependencies nor our package
on its path. lora.py and color_match.py are also imported by the orchestrator (parsing --lora, reading a safetensors
header; the post hoc colour match and the drift metric), which is why they keep torch out of their module level."""
