from .attention import flash_attention


def rope_apply(x, grid_sizes, freqs):
    raise AssertionError("upstream rope_apply: the launcher replaces it")


def self_attention(q, k, v, grid_sizes, freqs):
    return flash_attention(q=rope_apply(q, grid_sizes, freqs), k=rope_apply(k, grid_sizes, freqs), v=v)
