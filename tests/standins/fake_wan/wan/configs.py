"""wan/configs: the animate-14B entries generate.py reads."""
from types import SimpleNamespace

WAN_CONFIGS = {"animate-14B": SimpleNamespace(sample_steps=20, sample_shift=5.0, sample_guide_scale=1.0, frame_num=77,
                                              sample_fps=30, num_heads=40)}
SIZE_CONFIGS = {"1280*720": (1280, 720)}
MAX_AREA_CONFIGS = {"1280*720": 1280 * 720}
SUPPORTED_SIZES = {"animate-14B": ("1280*720",)}
