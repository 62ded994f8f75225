def rope_apply(x, grid_sizes, freqs):
    raise AssertionError("upstream sequence-parallel rope_apply: the launcher replaces it")


def sp_attn_forward(q, k, grid_sizes, freqs):
    return rope_apply(q, grid_sizes, freqs), rope_apply(k, grid_sizes, freqs)
