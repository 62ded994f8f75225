"""Timing lines for every part of a Wan2.2-Animate generation job, printed by the launcher and the warm worker
inside upstream's process: `[rav-timing] <part> <seconds> s[ (<detail>)]`, one line per event, rank 0 only.
scripts/bench_job.py parses them (and the run directory's logs keep them for users).

Parts (wrapped around the upstream functions WanAnimate calls at the pinned commit; nothing else changes):
  load.t5, load.clip, load.vae    T5EncoderModel / CLIPModel / Wan2_1_VAE construction incl. the checkpoint load
  load.dit                        WanAnimateModel.from_pretrained (the safetensors shards)
  load.configure                  WanAnimate._configure_model: the relighting LoRA (PEFT), our --lora merges, FSDP
  load.total                      WanAnimate.__init__ (all of the above, and the model options: fp8, compile wrap)
  t5.to_device, t5.encode, t5.offload   moving T5 to the GPU, each encoder call, upstream's move back to the CPU
  vae.encode, vae.decode          each VAE call
  dit.forward                     each DiT forward, numbered (the first one of a compiled model pays the compilation)
  generate                        WanAnimate.generate as a whole (inputs read, T5, VAE, DiT, per clip)
  save_video                      upstream's save_video

Each timed call ends with a CUDA synchronize where CUDA is in use, so a part's seconds are its own GPU work; the
syncs add nothing measurable (the DiT forward alone takes seconds). Standard library and torch only.
"""

from __future__ import annotations

import functools
import os
import sys
import time

TAG = "[rav-timing]"


def emit(part: str, seconds: float, detail: str = "") -> None:
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"{TAG} {part} {seconds:.3f} s" + (f" ({detail})" if detail else ""), flush=True)


def _sync() -> None:
    torch = sys.modules.get("torch")  # not imported: nothing ran on a GPU (the contract stand-ins)
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


def timed(part: str, function, detail=None):
    """`function` wrapped to emit `part` with its seconds; `detail(args, kwargs)` may add text."""
    if getattr(function, "rav_timed", None) == part:
        return function

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        _sync()
        started = time.perf_counter()
        result = function(*args, **kwargs)
        _sync()
        emit(part, time.perf_counter() - started, detail(args, kwargs) if detail else "")
        return result

    wrapper.rav_timed = part
    return wrapper


def _file_detail(path_argument: str):
    def detail(args, kwargs):
        path = kwargs.get(path_argument)
        if not path:
            return ""
        try:
            return f"{os.path.basename(path)}, {os.path.getsize(path) / 1e9:.2f} GB"
        except OSError:
            return os.path.basename(path)

    return detail


def _time_t5_moves(encoder) -> None:
    """T5's `.to(device)` before encoding and `.cpu()` after it (upstream's offload) happen inside generate(),
    on the model object: time them there."""
    model = encoder.model
    model.to = timed("t5.to_device", model.to)
    model.cpu = timed("t5.offload", model.cpu)


def _time_forwards(model) -> None:
    """dit.forward N for each DiT call, through module hooks (they survive torch.compile of the blocks)."""
    state = {"count": 0, "started": 0.0}

    def before(_module, _args):
        _sync()
        state["started"] = time.perf_counter()

    def after(_module, _args, _output):
        _sync()
        state["count"] += 1
        emit("dit.forward", time.perf_counter() - state["started"], f"#{state['count']}")

    if hasattr(model, "register_forward_hook"):  # a torch module (not the contract stand-in)
        model.register_forward_pre_hook(before)
        model.register_forward_hook(after)


def install() -> None:
    """Wrap the upstream functions (after `import wan`; before WanAnimate is built)."""
    from wan import animate
    from wan.modules import t5, vae2_1
    from wan.modules.animate import clip
    from wan.utils import utils

    t5_init = t5.T5EncoderModel.__init__

    def t5_init_and_moves(self, *args, **kwargs):
        t5_init(self, *args, **kwargs)
        _time_t5_moves(self)

    t5.T5EncoderModel.__init__ = timed(
        "load.t5", functools.wraps(t5_init)(t5_init_and_moves), _file_detail("checkpoint_path")
    )
    t5.T5EncoderModel.__call__ = timed("t5.encode", t5.T5EncoderModel.__call__)
    clip.CLIPModel.__init__ = timed("load.clip", clip.CLIPModel.__init__, _file_detail("checkpoint_path"))
    vae2_1.Wan2_1_VAE.__init__ = timed("load.vae", vae2_1.Wan2_1_VAE.__init__, _file_detail("vae_pth"))
    vae2_1.Wan2_1_VAE.encode = timed("vae.encode", vae2_1.Wan2_1_VAE.encode)
    vae2_1.Wan2_1_VAE.decode = timed("vae.decode", vae2_1.Wan2_1_VAE.decode)
    dit_class = animate.WanAnimateModel
    from_pretrained = dit_class.from_pretrained.__func__
    dit_class.from_pretrained = classmethod(timed("load.dit", from_pretrained))
    cls = animate.WanAnimate
    cls._configure_model = timed("load.configure", cls._configure_model)
    init = cls.__init__

    def init_and_hooks(self, *args, **kwargs):
        init(self, *args, **kwargs)
        _time_forwards(self.noise_model)

    cls.__init__ = timed("load.total", functools.wraps(init)(init_and_hooks))
    cls.generate = timed("generate", cls.generate)
    utils.save_video = timed("save_video", utils.save_video)
