def rope_apply(x, grid_sizes, freqs):
    raise AssertionError("upstream sequence-parallel rope_apply: the launcher replaces it")
