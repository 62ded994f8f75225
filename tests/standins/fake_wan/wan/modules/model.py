def flash_attention(*args, **kwargs):
    raise AssertionError("flash_attn is not installed")


def rope_apply(x, grid_sizes, freqs):
    raise AssertionError("upstream rope_apply: the launcher replaces it")
