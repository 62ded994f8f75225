from ..modules.attention import flash_attention


def distributed_attention(q, k, v):
    return flash_attention(q, k, v)
