def flash_attention(q, k, v, q_lens=None, k_lens=None, dropout_p=0.0, softmax_scale=None, q_scale=None, causal=False,
                    window_size=(-1, -1), deterministic=False, dtype=None, version=None):
    raise AssertionError("flash_attn is not installed")


def attention(q, k, v):
    return flash_attention(q, k, v)
