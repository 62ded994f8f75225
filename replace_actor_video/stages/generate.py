"""Stage 2: official Wan2.2 `generate.py --task animate-14B` (one GPU, or torchrun + FSDP + Ulysses), then
the finishing the official script leaves out: check the file was really written, retime it to the
preprocessing fps, trim it to the source frame count and put the source audio back.

Speed (docs/PERFORMANCE.md): the attention route, LoRA merging (`--lora`, e.g. the LightX2V 4-step distill
LoRA with `--preset fast`), `--compile` and `--fp8` are applied by our launcher around the official code;
T5 stays on big GPUs instead of upstream's offload to the CPU.

Smaller GPUs: `--memory_profile auto` is resolved here, from the first GPU's free memory and the resolution
(upstream/wan/memory_plan.py), to the launcher's full, balanced or low. Colour: the launcher colour-matches each
clip inside upstream's loop (`--color_match`); the drift metric of the result (ΔE at the clip joins and against the
first clip) goes to the manifest and the log."""

from __future__ import annotations

import dataclasses
import os
import random
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import psutil

from ..core.atomic import atomic_file, refuse_overwrite
from ..core.config import upstream_commit
from ..core.errors import StageFailed, UserError
from ..core.gpu import Gpu, visible_gpus
from ..core.options import as_dict
from ..core.paths import absolute
from ..core.planning import Plan, Problems
from ..core.rundir import RunContext, describe_path, fingerprint
from ..core.stage_cli import RunOptions, plan_stage
from ..core.stage_cli import main as stage_main
from ..media.ffmpeg import check_output_video, retime_trim_mux_argv
from ..media.probe import probe_video
from ..upstream.wan import generate as wan_generate
from ..upstream.wan import memory_plan
from ..upstream.wan import preprocess as wan_preprocess
from ..upstream.wan import worker_client as workers
from ..upstream.wan.color_drift import summary as drift_summary
from ..upstream.wan.color_drift import video_drift
from ..upstream.wan.generate import GenerateOptions, apply_preset, check_lora_file, lora_files
from ..upstream.wan.runtime import fastload as wan_fastload
from ..upstream.wan.runtime.lora import format_lora_arg

STAGE = "generate"
BIG_GPU_MIB = 80 * 10**9 // 2**20  # 80 GB: T5 (11 GB) stays beside the DiT (35 GB) and its activations
OPTION_CLASSES = (GenerateOptions, RunOptions)
HOW_NOT_WHAT = ("worker",)  # options that change how a job runs, not its result: left out of the resume fingerprint


def offload_t5(opts: GenerateOptions, nproc: int, gpus: list[Gpu]) -> bool:
    """generate.py --offload_model: upstream defaults to True on one GPU, which only moves T5 (11 GB) back to
    the CPU after encoding; on a GPU of 80 GB or more everything fits, so we keep it there."""
    if opts.no_offload or nproc > 1:
        return False
    return not (gpus and gpus[0].memory_mib >= BIG_GPU_MIB)


def choose_memory_profile(
    requested: str, gpus: list[Gpu], *, width: int, height: int, frame_num: int
) -> tuple[str, str]:
    """(profile, why). auto: the fastest profile whose estimated peak (memory_plan.py) fits the first GPU's free
    memory; full where no GPU is visible (upstream's behaviour)."""
    if requested != "auto":
        return requested, "requested"
    if not gpus:
        return "full", "auto: no GPU visible"
    free = (gpus[0].free_mib if gpus[0].free_mib is not None else gpus[0].memory_mib) / 1024
    cap = os.environ.get(memory_plan.CAP_ENV)
    if cap:  # the launcher's test knob: the run may use at most this much
        free = min(free, float(cap))
    profile = memory_plan.choose(free, width, height, frame_num)
    need = memory_plan.needs_gib(profile, width, height, frame_num)
    return profile, (
        f"auto: {free:.0f} GiB free on {gpus[0].name}, {width}x{height} needs ~{need:.0f} GiB with {profile}"
    )


def gpu_count(opts: GenerateOptions) -> int:
    if not opts.multi_gpu:
        return 1
    visible = len(visible_gpus())
    nproc = opts.nproc_per_node or visible
    if nproc < 2:
        raise UserError("--multi_gpu needs at least 2 GPUs; pass --nproc_per_node N or drop --multi_gpu")
    if visible and nproc > visible:
        raise UserError(f"--nproc_per_node {nproc}: only {visible} GPU(s) visible (nvidia-smi, CUDA_VISIBLE_DEVICES)")
    return nproc


@dataclass(frozen=True)
class Checked:
    """What the checks resolved: the options as the run uses them (preset applied, seed drawn), the preprocessing
    facts, the GPU count and the audio source."""

    opts: GenerateOptions
    fps: Fraction
    frames: int
    size: tuple[int, int]
    nproc: int
    audio: Path | None
    record: dict[str, Any]
    memory_profile: str  # resolved: full, balanced or low
    memory_why: str

    @property
    def resolved(self) -> dict[str, Any]:
        return {"seed": self.opts.seed}

    def facts(self) -> dict[str, Any]:
        return {
            "seed": self.opts.seed,
            "fps": self.fps,
            "frames": self.frames,
            "size": self.size,
            "nproc": self.nproc,
            "clips": wan_generate.clip_count(self.frames, self.opts.frame_num, self.opts.refert_num),
            "memory_profile": self.memory_profile,
        }


def check(
    opts: GenerateOptions,
    run_opts: RunOptions,
    problems: Problems,
    *,
    ctx: RunContext,
    planned: dict | None = None,
    creates: Path | None = None,
) -> Checked | None:
    """Every problem generating with `opts` would meet, added to `problems` (none is raised); what it resolved when
    there is none. `planned` stands in for the record of a preprocessing folder an earlier step writes; `creates`
    is the run directory the output may go into before it exists (default: this stage's)."""
    before = len(problems)
    for option, message in wan_generate.validation(opts):
        problems.add(message, option=option, stage=STAGE)
    opts = apply_preset(opts)
    if opts.seed < 0:
        opts = dataclasses.replace(opts, seed=random.randint(0, 2**31 - 1))  # drawn once, shown and recorded
    wan22, ckpt = absolute(opts.wan22_dir), absolute(opts.ckpt_dir)
    src_root, save_file = absolute(opts.src_root_path), absolute(opts.save_file)
    with problems.check(option="wan22_dir", stage=STAGE):
        wan_generate.check_wan22(wan22)
    with problems.check(option="ckpt_dir", stage=STAGE):
        wan_generate.check_checkpoint(ckpt, use_relighting_lora=opts.use_relighting_lora)
    for path, _ in lora_files(opts):
        with problems.check(option="lora", stage=STAGE):
            check_lora_file(path)
    record = None
    with problems.check(option="src_root_path", stage=STAGE):
        record = planned or read_preprocessing(src_root, replace=opts.replace)
    audio = None
    with problems.check(option="audio_from", stage=STAGE):
        audio = resolve_audio(opts, record or {}, dry_run=planned is not None)
    inputs = [src_root] + ([absolute(opts.audio_from)] if opts.audio_from else [])
    with problems.check(option="save_file", stage=STAGE):
        if not problems.mentions(str(save_file)):
            check_output_video(
                save_file,
                inputs=inputs,
                may_replace=run_opts.overwrite or ctx.owns(STAGE, save_file),
                run_dir=creates or ctx.run_dir,
            )
    nproc = 1
    with problems.check(option="nproc_per_node", stage=STAGE):
        nproc = gpu_count(opts)
    if record is None or problems.about("frame_num"):
        return None
    fps, frames, size = Fraction(record["fps"]), record["frames"], (record["width"], record["height"])
    with problems.check(option="refert_num", stage=STAGE):
        wan_generate.check_clip_frames(frames, opts.refert_num)
    if not problems.about("nproc_per_node"):
        with problems.check(option="nproc_per_node", stage=STAGE):
            wan_generate.check_parallel(nproc, frame_num=opts.frame_num, width=size[0], height=size[1])
    profile, why = (
        ("full", "several GPUs: FSDP shards the weights")
        if nproc > 1
        else choose_memory_profile(
            opts.memory_profile, visible_gpus(), width=size[0], height=size[1], frame_num=opts.frame_num
        )
    )
    with problems.check(option="memory_profile", stage=STAGE):
        wan_generate.check_memory_profile(profile, fp8=opts.fp8, multi_gpu=nproc > 1, why=why)
    if len(problems) > before:
        return None
    return Checked(opts, fps, frames, size, nproc, audio, record, profile, why)


def read_preprocessing(src_root: Path, *, replace: bool) -> dict[str, Any]:
    """The facts of an existing preprocessing folder: our record, with the frame size and count of src_pose.mp4
    (a folder preprocessed by hand has no record: its fps then is src_pose.mp4's)."""
    wan_generate.check_src_root(src_root, replace=replace)
    pose = probe_video(src_root / "src_pose.mp4", count_frames=True)
    record = wan_preprocess.read_record(src_root) or {"has_audio": False, "fps": str(pose.fps)}
    return {**record, "frames": pose.frames, "width": pose.width, "height": pose.height}


def run(
    opts: GenerateOptions,
    run_opts: RunOptions,
    *,
    ctx: RunContext,
    resume: bool = False,
    planned: dict | None = None,
    creates: Path | None = None,
) -> Path:
    """Generate into `save_file`. With `resume`, a finished run of the same inputs and options in this
    run directory is kept. `planned` stands in for the preprocessing record when a dry-run pipeline
    describes this stage before preprocessing has produced anything; `creates` as for check()."""
    problems = Problems()
    checked = check(opts, run_opts, problems, ctx=ctx, planned=planned, creates=creates)
    if checked is None:
        raise UserError(problems.items[0].message)
    opts, nproc, fps, frames, audio = checked.opts, checked.nproc, checked.fps, checked.frames, checked.audio
    wan22, ckpt = absolute(opts.wan22_dir), absolute(opts.ckpt_dir)
    src_root, save_file = absolute(opts.src_root_path), absolute(opts.save_file)
    loras = lora_files(opts)
    inputs = {"src_root_path": describe_path(src_root)}
    if loras:
        inputs["lora"] = [describe_path(path) for path, _ in loras]
    upstream = {"Wan2.2": {"path": str(wan22), "commit": upstream_commit(wan22)}, "checkpoint": str(ckpt)}
    fingerprinted = {k: v for k, v in as_dict(opts).items() if k not in HOW_NOT_WHAT}
    fp = fingerprint([fingerprinted, inputs, upstream])
    if resume and not ctx.dry_run and ctx.is_done(STAGE, fp):
        ctx.say(f"generate: up to date, keeping {save_file}")
        return save_file
    refuse_overwrite(save_file, run_opts.overwrite or ctx.owns(STAGE, save_file))
    gpus = visible_gpus() if nproc == 1 else []
    profile, why, width, height = checked.memory_profile, checked.memory_why, *checked.size
    ctx.say(f"generate: memory profile {profile} ({why})")
    need = memory_plan.needs_gib(profile, width, height, opts.frame_num)
    if gpus and gpus[0].free_mib is not None and need > gpus[0].free_mib / 1024:
        ctx.say(
            f"warning: {width}x{height} with --memory_profile {profile} needs ~{need:.0f} GiB (estimate), "
            f"{gpus[0].free_mib / 1024:.0f} GiB are free: it may run out of GPU memory; preprocess at a smaller "
            "--resolution_area"
        )
    offload = offload_t5(opts, nproc, [] if opts.no_offload else gpus) or profile == "balanced"
    t5_cpu = opts.t5_cpu or profile == "low"
    if gpus and not offload:
        ctx.say(
            f"generate: {gpus[0].name} has {gpus[0].memory_mib / 1024:.0f} GiB: T5 stays on the GPU "
            "(no --offload_model)"
        )
    raw = ctx.scratch(STAGE) / "generated_30fps_raw.mp4"
    upstream_opts = dataclasses.replace(
        opts,
        wan22_dir=str(wan22),
        ckpt_dir=str(ckpt),
        src_root_path=str(src_root),
        save_file=str(raw),
        lora=" ".join(format_lora_arg(path, weight) for path, weight in loras) or None,
        memory_profile=profile,
        t5_cpu=t5_cpu,
    )
    call = wan_generate.GenerateCall(upstream_opts, offload_model=offload, nproc=nproc)
    runner = worker_runner(opts.worker, call, ctx)
    reads = [src_root, *(path for path, _ in loras)]
    if ctx.dry_run:
        ctx.step(
            "generate (official generate.py via launcher)",
            call.argv(),
            stage=STAGE,
            runner=runner,
            inputs=reads,
            expected_outputs=[raw],
        )
        ctx.step(
            f"retime to {fps} fps, trim to {frames} frames{', mux source audio' if audio else ''}",
            retime_trim_mux_argv(raw, save_file, fps=fps, frames=frames, audio_from=audio),
            stage=STAGE,
            inputs=[raw, *([audio] if audio else [])],
            expected_outputs=[save_file],
        )
        return save_file

    resolved = {
        **as_dict(opts),
        "nproc": nproc,
        "offload_model": offload,
        "t5_cpu": t5_cpu,
        "memory_profile_used": profile,
        "memory_profile_why": why,
    }
    with ctx.running(STAGE, options=resolved, inputs=inputs, upstream=upstream, fp=fp, outputs=[save_file]):
        raw.unlink(missing_ok=True)
        ctx.step(
            "generate (official generate.py via launcher)",
            call.argv(),
            stage=STAGE,
            expected_outputs=[raw],
            cwd=ctx.scratch(STAGE),
            runner=runner,
        )
        wan_generate.check_generated(raw, expected_frames=frames)
        with atomic_file(save_file) as tmp:
            ctx.step(
                "retime, trim, mux audio",
                retime_trim_mux_argv(raw, tmp, fps=fps, frames=frames, audio_from=audio),
                stage=STAGE,
                expected_outputs=[tmp],
            )
            check_final(tmp, fps=fps, frames=frames, audio=audio is not None)
        record_drift(ctx, save_file, opts, src_root)
    ctx.say(
        f"generation done: {save_file} ({frames} frames at {fps} fps{', with audio' if audio else ''}, "
        f"seed {opts.seed})"
    )
    return save_file


def prefetch_checkpoint(opts: GenerateOptions, ctx: RunContext) -> None:
    """Ask the kernel to read the checkpoint files into the page cache in the background (the pipeline calls this
    before preprocessing, so the reads overlap it): only when they fit in the free memory, else they would push
    each other out before generation starts. Lossless; RAV_FASTLOAD=0 turns it off with the rest of fast loading."""
    if ctx.dry_run or not wan_fastload.enabled():
        return
    files = wan_fastload.checkpoint_files(str(absolute(opts.ckpt_dir)), relighting=opts.use_relighting_lora)
    size = sum(Path(f).stat().st_size for f in files)
    if files and size * 1.2 < psutil.virtual_memory().available:
        wan_fastload.prefetch(files)
        ctx.say(f"generate: reading the checkpoint ({size / 1e9:.0f} GB) into the page cache while earlier steps run")


def record_drift(ctx: RunContext, video: Path, opts: GenerateOptions, src_root: Path) -> None:
    """The colour-drift metric of the result (ΔE at clip joins, against the first clip) into the manifest and
    the log: what --color_match removed, or what is left."""
    mask = src_root / "src_mask.mp4" if opts.replace and (src_root / "src_mask.mp4").is_file() else None
    report = video_drift(video, clip_len=opts.frame_num, refert_num=opts.refert_num, mask_path=mask)
    report["color_match"] = {
        "method": opts.color_match,
        "strength": opts.color_match_strength,
        "anchor": opts.color_match_anchor,
    }
    ctx.stage_record(STAGE)["color_drift"] = report
    ctx.save()
    ctx.note(STAGE, f"generate: {drift_summary(report)}")


def worker_runner(mode: str, call: wan_generate.GenerateCall, ctx: RunContext) -> workers.WorkerRunner | None:
    """The warm worker that runs this job (--worker auto: one already running with these models; start: that,
    or a new one), or None for a fresh process. Multi-GPU jobs always run fresh."""
    if mode == "off" or call.nproc > 1:
        return None
    key = workers.key_for(call)
    handle = workers.find_worker(key)
    if handle is not None:
        ctx.say(f"generate: warm worker pid {handle.pid} holds these models: it runs the job (no model loading)")
        return workers.WorkerRunner(handle)
    others = [w for w in workers.list_workers() if w.get("own", {}).get("wan22_dir") is not None]
    if mode == "start" and not ctx.dry_run:
        handle = workers.start_worker(call)
        ctx.say(
            f"generate: started a warm worker (pid {handle.pid}): this job loads the models, later jobs with "
            f"the same model options reuse them; it exits {workers.idle_timeout():.0f} s after its last job"
        )
        return workers.WorkerRunner(handle)
    if others:
        ctx.say(
            f"generate: {len(others)} warm worker(s) with other model options hold GPU memory; if this job runs "
            "out of memory, stop them: python -m replace_actor_video.upstream.wan.worker_client stop --all"
        )
    return None


def resolve_audio(opts: GenerateOptions, record: dict, *, dry_run: bool = False) -> Path | None:
    """The audio source: --audio_from, else the preprocessed video when it has audio (in a dry run it may
    be the output of an earlier stage that does not exist yet)."""
    if opts.audio_from:
        source = absolute(opts.audio_from)
        if not probe_video(source).has_audio:
            raise UserError(f"{source}: has no audio stream; pass a file with audio to --audio_from")
        return source
    if record.get("has_audio") and (dry_run or Path(record["video_path"]).is_file()):
        return Path(record["video_path"])
    return None


def check_final(path: Path, *, fps: Fraction, frames: int, audio: bool) -> None:
    info = probe_video(path, count_frames=True)
    problems = []
    if info.frames != frames:
        problems.append(f"{info.frames} frames instead of {frames}")
    if info.fps != fps:
        problems.append(f"{info.fps} fps instead of {fps}")
    if audio and not info.has_audio:
        problems.append("no audio stream")
    if problems:
        raise StageFailed(f"finishing the generated video went wrong: {', '.join(problems)}")


def plan(values: Mapping[str, Any]) -> Plan:
    """The plan of `run_generation.py` with these option values (core/stage_cli.plan_stage)."""
    return plan_stage(STAGE, OPTION_CLASSES, values, check=check, run=run)


def main(argv: list[str] | None = None) -> int:
    return stage_main(
        description="Stage 2: Wan2.2-Animate generation (official generate.py, animate-14B).",
        option_classes=OPTION_CLASSES,
        plan=plan,
        run=run,
        argv=argv,
        stage=STAGE,
    )


if __name__ == "__main__":
    sys.exit(main())
