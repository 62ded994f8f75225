"""Faster model loading for Wan2.2-Animate, applied by the launcher around the official code (the clone is never
edited). Every change loads the same values into the same modules (tests/test_fastload.py compares the loaded
weights with upstream's own loading on the CPU); what changes is how many times they are copied and when.

Upstream (wan/animate.py, at the pinned commit) builds, in order, T5EncoderModel, CLIPModel, Wan2_1_VAE and the DiT:
- T5: `umt5_xxl(device='cpu')` builds the 5.7 B-parameter encoder in float32 on the CPU with random init
  (22.8 GB of random numbers, then a cast to bf16), `torch.load`s the 11.4 GB file into memory, copies it into
  the model, and generate() later moves it to the GPU. Here the encoder is built on the meta device (no memory,
  no init) and loaded by assignment from a memory-mapped file: the file's pages become the parameters.
- `torch.load` of T5, CLIP, the VAE and the relighting LoRA gets `mmap=True` (zip-format files only): the file is
  mapped instead of read into fresh memory, so each file is copied once, to where it is used.
- The DiT's safetensors shards are loaded by diffusers' own parallel loader (HF_ENABLE_PARALLEL_LOADING, one
  thread per shard) instead of one after the other.
- prefetch(): while Python imports `wan` and builds the small models, a background thread asks the kernel to read
  every checkpoint file into the page cache (posix_fadvise WILLNEED, in the order upstream needs them), so disk
  reads overlap the rest. The pipeline does the same while preprocessing runs.

RAV_FASTLOAD=0 in the environment turns all of it off (for side-by-side benchmarks). Standard library and torch.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import threading
import zipfile

# upstream's file names (wan/configs/wan_animate_14B.py), in the order WanAnimate loads them
T5_FILE = "models_t5_umt5-xxl-enc-bf16.pth"
CLIP_FILE = "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth"
VAE_FILE = "Wan2.1_VAE.pth"
DIT_INDEX = "diffusion_pytorch_model.safetensors.index.json"
RELIGHTING_LORA = "relighting_lora.ckpt"


def enabled() -> bool:
    return os.environ.get("RAV_FASTLOAD", "1") != "0"


def checkpoint_files(ckpt_dir: str, *, relighting: bool = False) -> list[str]:
    """The files WanAnimate reads, in the order it reads them (DiT shards from the index, else by name)."""
    import json

    files = [os.path.join(ckpt_dir, name) for name in (T5_FILE, CLIP_FILE, VAE_FILE)]
    try:
        with open(os.path.join(ckpt_dir, DIT_INDEX)) as fh:
            shards = sorted(set(json.load(fh)["weight_map"].values()))
    except (OSError, ValueError, KeyError):
        shards = (
            sorted(
                n
                for n in os.listdir(ckpt_dir)
                if n.startswith("diffusion_pytorch_model") and n.endswith(".safetensors")
            )
            if os.path.isdir(ckpt_dir)
            else []
        )
    files += [os.path.join(ckpt_dir, name) for name in shards]
    if relighting:
        files.append(os.path.join(ckpt_dir, RELIGHTING_LORA))
    return [path for path in files if os.path.isfile(path)]


def _willneed(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
    finally:
        os.close(fd)


def prefetch(paths: list[str]) -> threading.Thread | None:
    """Ask the kernel to read `paths` into the page cache, one after the other, in a daemon thread. A no-op
    where posix_fadvise does not exist; never fails the run (it only changes when bytes are read)."""
    if not paths or not hasattr(os, "posix_fadvise"):
        return None

    def run():
        for path in paths:
            with contextlib.suppress(OSError):
                _willneed(path)

    thread = threading.Thread(target=run, name="rav-prefetch", daemon=True)
    thread.start()
    return thread


def parallel_shard_loading() -> None:
    """diffusers reads HF_ENABLE_PARALLEL_LOADING once, when it is imported: call before `import wan`."""
    os.environ.setdefault("HF_ENABLE_PARALLEL_LOADING", "yes")


def _is_zip(path) -> bool:
    try:
        return isinstance(path, (str, os.PathLike)) and zipfile.is_zipfile(path)
    except OSError:
        return False


@contextlib.contextmanager
def mmap_torch_load():
    """torch.load with mmap=True for zip-format checkpoint files while the block runs (upstream calls
    torch.load by its module attribute, so this reaches T5, CLIP, the VAE and the relighting LoRA)."""
    torch = sys.modules.get("torch")  # upstream imports torch with wan; the contract stand-ins do not
    if torch is None:
        yield
        return
    original = torch.load

    @functools.wraps(original)
    def load(f, *args, **kwargs):
        if "mmap" not in kwargs and _is_zip(f):
            kwargs["mmap"] = True
        return original(f, *args, **kwargs)

    torch.load = load
    try:
        yield
    finally:
        torch.load = original


class MetaLoadError(RuntimeError):
    """A module built on the meta device kept tensors that its checkpoint did not fill."""


def _assign_load(model, device, dtype, state_dict, strict=True, assign=True):
    """load_state_dict for a model built on the meta device: the checkpoint's tensors become the parameters,
    then take the device and dtype upstream would have given them."""
    import torch

    del model.__dict__["load_state_dict"]  # one use: afterwards the model is an ordinary module again
    result = torch.nn.Module.load_state_dict(model, state_dict, strict=strict, assign=True)
    left = [name for name, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise MetaLoadError(
            f"{type(model).__name__}: the checkpoint did not fill {', '.join(left[:5])}"
            + (f" and {len(left) - 5} more" if len(left) > 5 else "")
        )
    model.to(device=device, dtype=dtype)
    return result


def meta_built(builder):
    """A model builder (`umt5_xxl(..., dtype, device)`) that builds on the meta device; the model's next
    load_state_dict assigns the checkpoint's tensors (see _assign_load)."""

    @functools.wraps(builder)
    def build(*args, **kwargs):
        import torch

        device = kwargs.pop("device", "cpu")
        dtype = kwargs.get("dtype", torch.float32)
        model = builder(*args, device="meta", **kwargs)
        model.load_state_dict = functools.partial(_assign_load, model, device, dtype)
        return model

    build.rav_meta_built = True
    return build


def install() -> None:
    """After `import wan`, before WanAnimate is built: T5 on the meta device, and torch.load memory-mapped
    while WanAnimate.__init__ runs."""
    from wan import animate
    from wan.modules import t5

    if not getattr(t5.umt5_xxl, "rav_meta_built", False):
        t5.umt5_xxl = meta_built(t5.umt5_xxl)
    init = animate.WanAnimate.__init__
    if getattr(init, "rav_mmap", False):
        return

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        with mmap_torch_load():
            init(self, *args, **kwargs)

    __init__.rav_mmap = True
    animate.WanAnimate.__init__ = __init__
