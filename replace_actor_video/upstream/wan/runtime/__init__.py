"""Code that runs inside Wan2.2's own interpreter, not ours: launcher.py is started as a file
(`python launcher.py ...`, or under torchrun) and loads rope.py, lora.py and patch_sites.py beside it by
path. Standard library and torch only, and no import of this package: the upstream environment has neither
our dependencies nor our package on its path. lora.py is also imported by the orchestrator (parsing
--lora, reading a safetensors header), which is why it keeps torch out of its module level."""
