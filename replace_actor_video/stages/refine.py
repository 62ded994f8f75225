"""Refine (optional): a second replace pass over an already generated video, to clean up what the first
pass left (clothing remnants, mask borders). It is the preprocess and generate stages run back to back
in replace mode, with the generated video as the driving video and the same reference image; the
source audio the generated video carries goes through to the result.

Its options are the stages' own declarations (same help, parsing and defaults), re-exposed under the
names the user knows from run_preprocessing.py / run_generation.py; only --input is new."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..adapters import wan_generate, wan_preprocess
from ..core.atomic import refuse_overwrite
from ..core.errors import UserError
from ..core.options import as_dict, option
from ..core.rundir import RunContext, describe_path, fingerprint
from ..media.probe import VideoInfo, check_image
from . import generate, preprocess
from .common import RunOptions, absolute, probe_input
from .common import main as stage_main
from .mask import MaskOptions, sam2_checkpoint
from .mask import check_ready as check_mask_ready

STAGE = "refine"
SUB_RUN = "refine"  # the inner preprocess/generate records live in <run dir>/refine/, apart from a first pass


def same_as(cls: type, name: str, **changes: Any) -> Any:
    """The option `name` of stage dataclass `cls`, declared once there; `changes` may set `default`
    or any OptionMeta field (e.g. `help`)."""
    source = cls.__dataclass_fields__[name]
    default = changes.pop("default", source.default)
    meta = dataclasses.replace(source.metadata["option"], **changes)
    return dataclasses.field(default=default, metadata={"option": meta})


P, G = preprocess.PreprocessOptions, generate.GenerateOptions


@dataclass(kw_only=True)
class RefineOptions:
    """Refine (second replace pass over a generated video)"""

    input: str = option(label="Generated video",
                        help="the generated video to refine (output of run_generation.py --replace)",
                        widget="video", group="inputs")
    refer_path: str = same_as(P, "refer_path", help="the reference image of the first pass")
    save_path: str = same_as(P, "save_path", default="refine_process",
                             help="folder for the refine pass's preprocessing results")
    save_file: str = same_as(G, "save_file", default="refined.mp4", aliases=())
    resolution: tuple[int, int] = same_as(P, "resolution")
    fps: int = same_as(P, "fps", default=-1, help="frames per second to sample the input at; -1 keeps "
                       "the generated video's fps")
    # Mask: the contour mask's options come with MaskOptions (OPTION_CLASSES); these shape the official one.
    iterations: int = same_as(P, "iterations")
    k: int = same_as(P, "k")
    w_len: int = same_as(P, "w_len")
    h_len: int = same_as(P, "h_len")
    use_relighting_lora: bool = same_as(G, "use_relighting_lora")
    prompt: str | None = same_as(G, "prompt")
    sample_steps: int | None = same_as(G, "sample_steps")
    sample_guide_scale: float | None = same_as(G, "sample_guide_scale")
    sample_shift: float | None = same_as(G, "sample_shift")
    seed: int = same_as(G, "seed")
    no_offload: bool = same_as(G, "no_offload")
    multi_gpu: bool = same_as(G, "multi_gpu")
    nproc_per_node: int = same_as(G, "nproc_per_node")
    preset: str | None = same_as(G, "preset")
    lora: str | None = same_as(G, "lora")
    attention: str = same_as(G, "attention")
    compile: bool = same_as(G, "compile")
    fp8: bool = same_as(G, "fp8")
    vae_bf16: bool = same_as(G, "vae_bf16")
    audio_from: str | None = same_as(G, "audio_from", help="take the audio from this file (e.g. the original "
                                     "source video) instead of the input")
    wan22_dir: str = same_as(P, "wan22_dir")
    ckpt_dir: str = same_as(P, "ckpt_dir")


OPTION_CLASSES = [RefineOptions, MaskOptions, RunOptions]


def stage_options(opts: RefineOptions) -> tuple[preprocess.PreprocessOptions, generate.GenerateOptions]:
    """The two stages' options for a replace pass over `opts.input`."""
    pre = preprocess.PreprocessOptions(
        video_path=opts.input, refer_path=opts.refer_path, save_path=opts.save_path, resolution=opts.resolution,
        fps=opts.fps, replace=True, iterations=opts.iterations, k=opts.k, w_len=opts.w_len, h_len=opts.h_len,
        wan22_dir=opts.wan22_dir, ckpt_dir=opts.ckpt_dir)
    gen = generate.GenerateOptions(
        src_root_path=opts.save_path, save_file=opts.save_file, replace=True,
        use_relighting_lora=opts.use_relighting_lora, prompt=opts.prompt, sample_steps=opts.sample_steps,
        sample_guide_scale=opts.sample_guide_scale, sample_shift=opts.sample_shift, seed=opts.seed,
        no_offload=opts.no_offload, multi_gpu=opts.multi_gpu, nproc_per_node=opts.nproc_per_node,
        preset=opts.preset, lora=opts.lora, attention=opts.attention, compile=opts.compile, fp8=opts.fp8,
        vae_bf16=opts.vae_bf16, audio_from=opts.audio_from, wan22_dir=opts.wan22_dir, ckpt_dir=opts.ckpt_dir)
    return pre, gen


def check_upstream(opts: RefineOptions, mask: MaskOptions) -> None:
    """What the two stages check before they run, checked before anything is written for the refine."""
    wan22, ckpt = absolute(opts.wan22_dir), absolute(opts.ckpt_dir)
    wan_preprocess.check_wan22(wan22)
    wan_preprocess.check_process_checkpoint(ckpt, replace=True, use_flux=False)
    if mask.mask_mode == "contour":
        check_mask_ready(mask)
        sam2_checkpoint(mask, ckpt)
    wan_generate.check_checkpoint(ckpt, use_relighting_lora=opts.use_relighting_lora)


def run(opts: RefineOptions, mask: MaskOptions, run_opts: RunOptions, *, ctx: RunContext,
        resume: bool = False, planned: VideoInfo | None = None) -> Path:
    """Preprocess `input` in replace mode into `save_path`, generate into `save_file`. With `resume`, a
    finished refine of the same input and options in this run directory is kept."""
    pre, gen = stage_options(opts)
    preprocess.validate(pre)
    generate.validate(gen)
    input_path, save_file = absolute(opts.input), absolute(opts.save_file)
    if save_file == input_path:
        raise UserError(f"{save_file}: --save_file is the input; choose another output path")
    video = probe_input(input_path, ctx, planned)
    check_image(opts.refer_path)
    if not ctx.dry_run:
        check_upstream(opts, mask)
    inputs = {"input": describe_path(input_path), "refer_path": describe_path(absolute(opts.refer_path))}
    fp = fingerprint([as_dict(opts), as_dict(mask), inputs])
    if resume and not ctx.dry_run and ctx.is_done(STAGE, fp):
        ctx.say(f"refine: up to date, keeping {save_file}")
        return save_file
    refuse_overwrite(save_file, run_opts.overwrite or ctx.owns(STAGE, save_file))

    # The inner stages keep their own manifest and logs in <run dir>/refine, so a pipeline's first
    # preprocess/generate records are not replaced by the refine pass's.
    inner = RunContext.open(ctx.run_dir / SUB_RUN, dry_run=ctx.dry_run, on_progress=ctx.on_progress,
                            cancel=ctx.cancel, echo=ctx.echo)
    if ctx.dry_run:
        preprocess.run(pre, mask, run_opts, ctx=inner, resume=resume, planned=planned)
        fps = video.fps if opts.fps == -1 else Fraction(opts.fps)
        planned = {"video_path": str(input_path), "has_audio": video.has_audio, "fps": str(fps),
                   "frames": int(video.frames / video.fps * fps)}
        return generate.run(gen, run_opts, ctx=inner, resume=resume, planned=planned)

    with ctx.running(STAGE, options={**as_dict(opts), "mask": as_dict(mask)}, inputs=inputs,
                     upstream={"run_dir": str(inner.run_dir)}, fp=fp, outputs=[save_file]):
        ctx.say("refine 1/2: preprocess the generated video (replace mode)")
        preprocess.run(pre, mask, run_opts, ctx=inner, resume=resume)
        ctx.say("refine 2/2: generate (replace mode)")
        out = generate.run(gen, run_opts, ctx=inner, resume=resume)
    ctx.say(f"refine done: {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    return stage_main(description="Refine (optional): a second replace pass (preprocess + generation) over a "
                      "generated video, to reduce artifacts.", option_classes=OPTION_CLASSES, run=run, argv=argv,
                      stage=STAGE)


if __name__ == "__main__":
    sys.exit(main())
