"""Rotary position embedding for the Wan2.2 DiT in real float32 arithmetic: a drop-in for upstream's
`wan.modules.model.rope_apply` and `wan.distributed.sequence_parallel.rope_apply` (at the commit of ../pin.py).

Why: upstream rotates q and k in complex float64 (`view_as_complex(x.to(float64)) * freqs`), 80 times per
DiT forward at 75,600 tokens × 5,120 channels, builds the per-token table from `freqs` on every call and
reads `grid_sizes.tolist()` inside each block. Inductor cannot generate code for complex tensors, so with
`--compile` those stay eager, unfused kernels over ~3 GB float64 tensors. Here the cos/sin table is built
once per grid (cached) and the rotation is four float32 multiplies that Inductor fuses with the cast.

Same function: upstream rounds its float64 result to float32 (`.float()`), and flash attention then casts
q and k to bf16; computing in float32 changes the float32 value by a few ulp at most, which the bf16 cast
almost always absorbs (the benchmark's lossless check compares DiT outputs, docs/PERFORMANCE.md).

Standard library and torch only: loaded by path from launcher.py, inside the upstream interpreter.
"""

from __future__ import annotations

import torch

_TABLES: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
_MAX_TABLES = 16  # one entry per (grid, rank slice, device); a run uses one or two grids


def _frequency_grid(freqs: torch.Tensor, f: int, h: int, w: int) -> torch.Tensor:
    """The complex multiplier of each of the f·h·w tokens, [f·h·w, C/2], exactly as upstream builds it."""
    c = freqs.size(1)
    parts = freqs.split([c - 2 * (c // 3), c // 3, c // 3], dim=1)
    return torch.cat(
        [
            parts[0][:f].view(f, 1, 1, -1).expand(f, h, w, -1),
            parts[1][:h].view(1, h, 1, -1).expand(f, h, w, -1),
            parts[2][:w].view(1, 1, w, -1).expand(f, h, w, -1),
        ],
        dim=-1,
    ).reshape(f * h * w, -1)


def _cos_sin(freqs: torch.Tensor, grid: tuple[int, int, int], start: int, rows: int, device: torch.device):
    """float32 cos and sin, [rows, 1, C/2], for token positions start..start+rows; positions past the grid
    (sequence-parallel padding) get the identity rotation, as upstream's `pad_freqs` pads with 1."""
    key = (freqs.data_ptr(), tuple(freqs.shape), grid, start, rows, str(device))
    if key not in _TABLES:
        table = _frequency_grid(freqs, *grid)
        if start + rows > table.size(0):
            pad = torch.ones(start + rows - table.size(0), table.size(1), dtype=table.dtype, device=table.device)
            table = torch.cat([table, pad])
        table = table[start : start + rows].to(device)
        if len(_TABLES) >= _MAX_TABLES:
            _TABLES.clear()
        _TABLES[key] = (table.real.float()[:, None, :].contiguous(), table.imag.float()[:, None, :].contiguous())
    return _TABLES[key]


@torch.compiler.disable
def _tables(
    grid_sizes: torch.Tensor, freqs: torch.Tensor, rows: int, device: torch.device, padded_from: int | None = None
) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """(rotated rows, cos, sin) per sample. Plain: the first min(f·h·w, rows) tokens. `padded_from`: all
    `rows` tokens from that position (a sequence-parallel rank's slice). Kept out of torch.compile: it
    reads grid_sizes on the host."""
    out = []
    for f, h, w in grid_sizes.tolist():
        if padded_from is None:
            n = min(f * h * w, rows)
            out.append((n, *_cos_sin(freqs, (f, h, w), 0, n, device)))
        else:
            out.append((rows, *_cos_sin(freqs, (f, h, w), padded_from, rows, device)))
    return out


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [L, N, C] (pairs of channels as real/imaginary parts) rotated by cos + i·sin, in float32."""
    pairs = x.float().unflatten(-1, (-1, 2))
    real, imag = pairs[..., 0], pairs[..., 1]
    return torch.stack([real * cos - imag * sin, real * sin + imag * cos], dim=-1).flatten(-2)


def rope_apply(x: torch.Tensor, grid_sizes: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Drop-in for `wan.modules.model.rope_apply`: x [B, L, N, C]; tokens past f·h·w are passed through."""
    output = []
    for i, (n, cos, sin) in enumerate(_tables(grid_sizes, freqs, x.size(1), x.device)):
        output.append(torch.cat([_rotate(x[i, :n], cos, sin), x[i, n:].float()]))
    return torch.stack(output)


def sequence_parallel_rope_apply(x: torch.Tensor, grid_sizes: torch.Tensor, freqs: torch.Tensor) -> torch.Tensor:
    """Drop-in for `wan.distributed.sequence_parallel.rope_apply`: x holds this rank's L/world tokens."""
    import torch.distributed as dist

    rank = dist.get_rank() if dist.is_initialized() else 0
    tables = _tables(grid_sizes, freqs, x.size(1), x.device, padded_from=rank * x.size(1))
    with torch.autocast("cuda", enabled=False):  # upstream's decorator
        return torch.stack([_rotate(x[i], cos, sin) for i, (_, cos, sin) in enumerate(tables)])
