"""LoRA files for the Wan2.2-Animate DiT: parse `PATH[:WEIGHT]`, read a file's key names, map the keys onto
the official `WanAnimateModel` module names and merge the weights into the model once, at load time.

Used in two environments, so it imports nothing outside the standard library at module level:
- the orchestrator (the generation stage) parses the option and reads the safetensors header (plain JSON);
- the upstream Python, where `launcher.py` loads this file by path and merges with torch.

Key spellings handled (one file may mix them; what decides is the module the key names):
- module path: the official Wan names (`blocks.0.self_attn.q`, as in Wan2.2 model_animate.py and the
  LightX2V/ComfyUI "diffusion_model." files), kohya/musubi-tuner underscores (`lora_unet_blocks_0_self_attn_q`)
  and the diffusers `WanTransformer3DModel` names (`transformer.blocks.0.attn1.to_q`);
- prefixes `diffusion_model.`, `model.diffusion_model.`, `transformer.`, `base_model.model.`, `lora_unet_`;
- low-rank pairs `lora_down`/`lora_up` (kohya, ComfyUI, LightX2V), `lora_A`/`lora_B` (PEFT, diffusers,
  also with the PEFT adapter name `.default`), with an optional `.alpha` (scale alpha/rank, else 1);
- full deltas `.diff` (weight, or the parameter named in full, as ComfyUI spells `blocks.0.modulation.diff`),
  `.diff_b` (bias), `.diff_m` (the block's `modulation`), as the LightX2V step-distill LoRAs carry for norms,
  biases and modulations.
Keys that name no module of the model are skipped and counted (ComfyUI warns the same way); a file of which
nothing applies, a shape that does not fit (a LoRA for another model size) or LoCon/DoRA/LoHa/LoKr weights
are refused.

Merge: W += weight × (alpha/rank) × up @ down, computed in float32 and written back in W's dtype.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PREFIXES = ("model.diffusion_model.", "diffusion_model.", "transformer.", "base_model.model.", "lora_unet_", "unet.")
PAIR_SUFFIXES = (  # (down, up): the longest spellings first, so `.lora_A.default.weight` is not read as `.weight`
    (".lora_A.default.weight", ".lora_B.default.weight"),
    (".lora_down.weight", ".lora_up.weight"),
    (".lora_A.weight", ".lora_B.weight"),
    (".lora.down.weight", ".lora.up.weight"),
    ("_lora.down.weight", "_lora.up.weight"),
    (".lora_linear_layer.down.weight", ".lora_linear_layer.up.weight"),
)
PAIR_BIAS = ".lora_B.bias"  # diffusers' spelling of a bias delta that belongs to the pair
DIFF_SUFFIXES = {".diff": "weight", ".diff_b": "bias", ".diff_m": "modulation"}
ALPHA = ".alpha"
UNSUPPORTED = (".lora_mid.weight", ".dora_scale", ".hada_w1_a", ".lokr_w1")  # LoCon-Tucker, DoRA, LoHa, LoKr

# Official Wan module names (Wan2.2 wan/modules/model.py, animate/model_animate.py) → diffusers names
# (diffusers scripts/convert_wan_to_diffusers.py, loaders/lora_conversion_utils.py). Norms are left out:
# diffusers swaps norm2/norm3 and its LoRA loader drops norm deltas, so no diffusers file carries them.
DIFFUSERS_BLOCK_NAMES = {
    "self_attn.q": "attn1.to_q",
    "self_attn.k": "attn1.to_k",
    "self_attn.v": "attn1.to_v",
    "self_attn.o": "attn1.to_out.0",
    "self_attn.norm_q": "attn1.norm_q",
    "self_attn.norm_k": "attn1.norm_k",
    "cross_attn.q": "attn2.to_q",
    "cross_attn.k": "attn2.to_k",
    "cross_attn.v": "attn2.to_v",
    "cross_attn.o": "attn2.to_out.0",
    "cross_attn.norm_q": "attn2.norm_q",
    "cross_attn.norm_k": "attn2.norm_k",
    "cross_attn.k_img": "attn2.add_k_proj",
    "cross_attn.v_img": "attn2.add_v_proj",
    "cross_attn.norm_k_img": "attn2.norm_added_k",
    "ffn.0": "ffn.net.0.proj",
    "ffn.2": "ffn.net.2",
}
DIFFUSERS_TOP_NAMES = {
    "text_embedding.0": "condition_embedder.text_embedder.linear_1",
    "text_embedding.2": "condition_embedder.text_embedder.linear_2",
    "time_embedding.0": "condition_embedder.time_embedder.linear_1",
    "time_embedding.2": "condition_embedder.time_embedder.linear_2",
    "time_projection.1": "condition_embedder.time_proj",
    "img_emb.proj.0": "condition_embedder.image_embedder.norm1",
    "img_emb.proj.1": "condition_embedder.image_embedder.ff.net.0.proj",
    "img_emb.proj.3": "condition_embedder.image_embedder.ff.net.2",
    "img_emb.proj.4": "condition_embedder.image_embedder.norm2",
    "head.head": "proj_out",
}
_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")


class LoraError(ValueError):
    """A LoRA argument or file that cannot be used; the message names the file and the fix."""


# ---- the argument ---------------------------------------------------------------------------------------------


def parse_lora_arg(text: str) -> tuple[str, float]:
    """`PATH[:WEIGHT]` → (path, weight). The weight is whatever follows the last colon when it is a number,
    so Windows drive letters and colons inside names stay part of the path."""
    text = text.strip()
    path, sep, tail = text.rpartition(":")
    if sep and path:
        try:
            return path, float(tail)
        except ValueError:
            pass
    if not text:
        raise LoraError("empty LoRA argument; expected PATH or PATH:WEIGHT")
    return text, 1.0


def format_lora_arg(path: str | Path, weight: float) -> str:
    return f"{path}:{weight:g}"


# ---- reading a file ---------------------------------------------------------------------------------------------


def safetensors_keys(path: str | Path) -> list[str]:
    """Tensor names from a .safetensors header (8-byte little-endian length, then JSON), without torch."""
    path = Path(path)
    with path.open("rb") as f:
        head = f.read(8)
        if len(head) != 8:
            raise LoraError(f"{path}: not a safetensors file (too short)")
        size = struct.unpack("<Q", head)[0]
        if size > 100 * 2**20 or size > path.stat().st_size:
            raise LoraError(f"{path}: not a safetensors file (bad header length)")
        try:
            header = json.loads(f.read(size))
        except ValueError:
            raise LoraError(f"{path}: not a safetensors file (header is not JSON)") from None
    return [k for k in header if k != "__metadata__"]


def load_state_dict(path: str | Path) -> dict[str, Any]:
    """All tensors of a LoRA file on the CPU: .safetensors, or a torch pickle (.pt/.pth/.ckpt, weights only,
    a top-level "state_dict" is unwrapped as in relighting_lora.ckpt)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    import torch

    sd = torch.load(str(path), map_location="cpu", weights_only=True)
    if isinstance(sd, dict) and isinstance(sd.get("state_dict"), dict):
        sd = sd["state_dict"]
    return sd


# ---- key classification -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyRole:
    base: str  # the module path as spelled in the file, prefix removed
    role: str  # down | up | up_bias | alpha | diff | diff_b | diff_m


def strip_prefix(key: str) -> str:
    for prefix in PREFIXES:
        if key.startswith(prefix):
            return key[len(prefix) :].lstrip("_")  # ComfyUI also knows a "lora_unet__" spelling
    return key


def classify_key(key: str) -> KeyRole | None:
    """What one key of a LoRA file is, or None when it is not a LoRA key at all."""
    for unsupported in UNSUPPORTED:
        if unsupported in key:
            raise LoraError(
                f"LoRA key {key!r}: {unsupported.strip('.')} weights are not supported "
                "(only plain low-rank pairs and .diff/.diff_b/.diff_m deltas)"
            )
    rest = strip_prefix(key)
    for down, up in PAIR_SUFFIXES:
        if rest.endswith(down):
            return KeyRole(rest[: -len(down)], "down")
        if rest.endswith(up):
            return KeyRole(rest[: -len(up)], "up")
    if rest.endswith(PAIR_BIAS):
        return KeyRole(rest[: -len(PAIR_BIAS)], "up_bias")
    if rest.endswith(ALPHA):
        return KeyRole(rest[: -len(ALPHA)], "alpha")
    for suffix, _param in sorted(DIFF_SUFFIXES.items(), key=lambda kv: -len(kv[0])):
        if rest.endswith(suffix):
            return KeyRole(rest[: -len(suffix)], suffix[1:])
    return None


def lora_key_count(keys: Iterable[str]) -> int:
    """How many keys look like LoRA weights (pairs or deltas); 0 means the file is not a LoRA."""
    return sum(1 for k in keys if (role := classify_key(k)) is not None and role.role != "alpha")


# ---- mapping onto the model -----------------------------------------------------------------------------------


def diffusers_name(official: str) -> str | None:
    """The diffusers WanTransformer3DModel name of an official Wan module name, where one exists."""
    match = _BLOCK.match(official)
    if match:
        inner = DIFFUSERS_BLOCK_NAMES.get(match.group(2))
        return f"blocks.{match.group(1)}.{inner}" if inner else None
    return DIFFUSERS_TOP_NAMES.get(official)


def module_aliases(module_names: Iterable[str]) -> dict[str, str]:
    """Every spelling a LoRA file may use for a module → its official name. An official name always means
    itself; another spelling two modules would share (none in WanAnimateModel) is dropped, not guessed."""
    names = [name for name in module_names if name]
    aliases = {name: name for name in names}
    others: dict[str, set[str]] = {}
    for name in names:
        other = diffusers_name(name)
        for spelling in {name.replace(".", "_")} | ({other, other.replace(".", "_")} if other else set()):
            others.setdefault(spelling, set()).add(name)
    for spelling, owners in others.items():
        if spelling not in aliases and len(owners) == 1:
            aliases[spelling] = next(iter(owners))
    return aliases


@dataclass(frozen=True)
class PairPatch:
    module: str
    down: str
    up: str
    alpha: str | None
    up_bias: str | None


@dataclass(frozen=True)
class DiffPatch:
    module: str
    param: str  # weight | bias | modulation
    key: str


@dataclass
class MergePlan:
    pairs: list[PairPatch] = field(default_factory=list)
    diffs: list[DiffPatch] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # keys naming no module of the model
    ignored: list[str] = field(default_factory=list)  # keys that are not LoRA weights


def plan_merge(keys: Iterable[str], module_names: Iterable[str], parameter_names: Iterable[str] = ()) -> MergePlan:
    """Group a file's keys into patches on the model's modules (names only: no tensors needed).
    `parameter_names` lets a delta name a parameter itself, as ComfyUI spells `blocks.0.modulation.diff`."""
    aliases = module_aliases(module_names)
    parameters = set(parameter_names)
    groups: dict[str, dict[str, str]] = {}
    plan = MergePlan()
    for key in keys:
        role = classify_key(key)
        if role is None:
            plan.ignored.append(key)
            continue
        module = aliases.get(role.base)
        if module is None and role.role == "diff":
            parent, _, attr = role.base.rpartition(".")
            owner = aliases.get(parent)
            if owner is not None and f"{owner}.{attr}" in parameters:
                plan.diffs.append(DiffPatch(owner, attr, key))
                continue
        if module is None:
            plan.unmatched.append(key)
            continue
        slot = groups.setdefault(module, {})
        if role.role in slot:
            raise LoraError(f"LoRA keys {slot[role.role]!r} and {key!r} patch the same weight of {module}")
        slot[role.role] = key
    for module, slot in groups.items():
        if ("down" in slot) != ("up" in slot):
            raise LoraError(f"LoRA pair for {module} is incomplete: has {sorted(slot)}")
        if "down" in slot:
            plan.pairs.append(PairPatch(module, slot["down"], slot["up"], slot.get("alpha"), slot.get("up_bias")))
        elif "up_bias" in slot:
            plan.diffs.append(DiffPatch(module, "bias", slot["up_bias"]))
        for role, param in (("diff", "weight"), ("diff_b", "bias"), ("diff_m", "modulation")):
            if role in slot:
                plan.diffs.append(DiffPatch(module, param, slot[role]))
    seen: dict[tuple[str, str], str] = {}
    for diff in plan.diffs:
        if seen.setdefault((diff.module, diff.param), diff.key) != diff.key:
            raise LoraError(
                f"LoRA keys {seen[(diff.module, diff.param)]!r} and {diff.key!r} patch the same "
                f"{diff.param} of {diff.module}"
            )
    return plan


# ---- merging (torch) ---------------------------------------------------------------------------------------------


def lora_delta(down: Any, up: Any, alpha: float | None, shape: Any) -> Any:
    """(alpha/rank) · up @ down in float32, reshaped to the weight (Linear, or a Conv kernel)."""
    d = down.float().flatten(1)
    u = up.float().flatten(1)
    if u.shape[1] != d.shape[0]:
        raise LoraError(f"LoRA up {tuple(up.shape)} and down {tuple(down.shape)} ranks differ")
    scale = 1.0 if alpha is None else float(alpha) / d.shape[0]
    delta = (u @ d) * scale
    if delta.shape[0] != int(shape[0]) or delta.numel() != _numel(shape):
        raise LoraError(
            f"LoRA delta {tuple(delta.shape)} does not fit a weight of shape {tuple(shape)}: "
            "the LoRA was made for another model (size)"
        )
    return delta.reshape(shape)


def _numel(shape: Any) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _target_parameter(model: Any, module_name: str, param: str) -> Any:
    module = model.get_submodule(module_name)
    base = getattr(module, "base_layer", None)  # a PEFT LoraLayer (relighting LoRA): patch the wrapped Linear
    if base is not None and param in ("weight", "bias"):
        module = base
    tensor = getattr(module, param, None)
    if tensor is None:
        raise LoraError(f"{module_name} has no {param} to patch")
    return tensor


def _add_(target: Any, delta: Any, weight: float, what: str) -> None:
    """target += weight · delta in float32, in place, in target's dtype. A delta with the same number of
    elements is reshaped (modulation deltas are stored as [6, dim] or [1, 6, dim])."""
    import torch

    if delta.numel() != target.numel():
        raise LoraError(
            f"{what}: LoRA delta {tuple(delta.shape)} does not fit {tuple(target.shape)}; "
            "the LoRA was made for another model (size)"
        )
    with torch.no_grad():
        delta = delta.to(device=target.device, dtype=torch.float32).reshape(target.shape)
        target.copy_((target.float() + weight * delta).to(target.dtype))


@dataclass(frozen=True)
class MergeReport:
    path: str
    weight: float
    pairs: int
    diffs: int
    unmatched: list[str]
    ignored: list[str]

    def summary(self) -> str:
        text = f"{self.path} @ {self.weight:g}: merged {self.pairs} low-rank pairs and {self.diffs} deltas"
        if self.unmatched:
            text += (
                f"; {len(self.unmatched)} keys name no module of this model and were skipped "
                f"(e.g. {', '.join(self.unmatched[:3])})"
            )
        if self.ignored:
            text += f"; {len(self.ignored)} non-LoRA keys ignored"
        return text


def merge_state_dict(model: Any, state_dict: dict[str, Any], weight: float, *, path: str = "<lora>") -> MergeReport:
    """Merge one LoRA state dict into `model` in place. Refuses a file that patches nothing of this model."""
    plan = plan_merge(
        state_dict.keys(), (name for name, _ in model.named_modules()), (name for name, _ in model.named_parameters())
    )
    if not plan.pairs and not plan.diffs:
        raise LoraError(
            f"{path}: no key names a module of this model (first keys: "
            f"{', '.join(list(state_dict)[:3])}); is it a LoRA for Wan 14B?"
        )
    for pair in plan.pairs:
        target = _target_parameter(model, pair.module, "weight")
        alpha = None if pair.alpha is None else float(state_dict[pair.alpha])
        delta = lora_delta(state_dict[pair.down], state_dict[pair.up], alpha, target.shape)
        _add_(target, delta, weight, pair.module)
        if pair.up_bias is not None:
            scale = 1.0 if alpha is None else alpha / state_dict[pair.down].shape[0]
            _add_(
                _target_parameter(model, pair.module, "bias"),
                state_dict[pair.up_bias].float() * scale,
                weight,
                f"{pair.module}.bias",
            )
    for diff in plan.diffs:
        _add_(
            _target_parameter(model, diff.module, diff.param),
            state_dict[diff.key],
            weight,
            f"{diff.module}.{diff.param}",
        )
    return MergeReport(path, weight, len(plan.pairs), len(plan.diffs), plan.unmatched, plan.ignored)


def merge_file(model: Any, path: str | Path, weight: float) -> MergeReport:
    return merge_state_dict(model, load_state_dict(path), weight, path=str(path))
