try:
    from flash_attn import flash_attn_func
except ImportError:
    flash_attn_func = None


def face_attention(q, k, v):
    return flash_attn_func(q, k, v)
