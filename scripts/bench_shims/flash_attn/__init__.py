"""EMULATED flash_attn (FlashAttention-2) for the official rows of scripts/bench_job.py on the lent GPU machine, where
flash_attn is not installed and upstream Animate cannot run without it: the calls upstream makes
(`flash_attn_varlen_func` in wan/modules/attention.py, `flash_attn_func` in animate/face_blocks.py) run
torch's scaled_dot_product_attention restricted to SDPBackend.FLASH_ATTENTION, which is PyTorch's FlashAttention-2
kernel: the same kernel family users get from flash_attn 2. Never used by the toolkit itself."""

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

EMULATED = True


def _attend(q, k, v, dropout_p, softmax_scale, causal):
    """q, k, v [B, L, N, D] → [B, L, N, D] on the FA2 kernel."""
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2),
            k.transpose(1, 2),
            v.transpose(1, 2),
            dropout_p=dropout_p,
            is_causal=causal,
            scale=softmax_scale,
        )
    return out.transpose(1, 2)


def flash_attn_varlen_func(
    q,
    k,
    v,
    cu_seqlens_q,
    cu_seqlens_k,
    max_seqlen_q,
    max_seqlen_k,
    dropout_p=0.0,
    softmax_scale=None,
    causal=False,
    window_size=(-1, -1),
    deterministic=False,
    **_unused,
):
    """Packed sequences [total, N, D] cut at cu_seqlens, each attended on its own, packed again."""
    if tuple(window_size) != (-1, -1):
        raise NotImplementedError("the emulation has no sliding window (upstream Animate never uses one)")
    bounds_q, bounds_k = cu_seqlens_q.tolist(), cu_seqlens_k.tolist()
    outs = [
        _attend(q[a:b][None], k[c:d][None], v[c:d][None], dropout_p, softmax_scale, causal)[0]
        for a, b, c, d in zip(bounds_q, bounds_q[1:], bounds_k, bounds_k[1:])
    ]
    return torch.cat(outs)


def flash_attn_func(q, k, v, dropout_p=0.0, softmax_scale=None, causal=False, **_unused):
    return _attend(q, k, v, dropout_p, softmax_scale, causal)


def flash_attn_qkvpacked_func(qkv, dropout_p=0.0, softmax_scale=None, causal=False, **_unused):
    q, k, v = qkv.unbind(dim=2)
    return _attend(q, k, v, dropout_p, softmax_scale, causal)
