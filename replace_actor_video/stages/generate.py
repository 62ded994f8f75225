"""Stage 2: official Wan2.2 `generate.py --task animate-14B` (one GPU, or torchrun + FSDP + Ulysses), then
the finishing the official script leaves out: check the file was really written, retime it to the
preprocessing fps, trim it to the source frame count and put the source audio back.

Speed (docs/PERFORMANCE.md): the attention route, LoRA merging (`--lora`, e.g. the LightX2V 4-step distill
LoRA with `--preset fast`), `--compile` and `--fp8` are applied by our launcher around the official code;
T5 stays on big GPUs instead of upstream's offload to the CPU."""

from __future__ import annotations

import dataclasses
import random
import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import psutil

from ..adapters import wan_fastload, wan_generate
from ..adapters import wan_worker_client as workers
from ..adapters.lora import LoraError, format_lora_arg, lora_key_count, parse_lora_arg, safetensors_keys
from ..core.atomic import atomic_file, refuse_overwrite
from ..core.config import upstream_commit
from ..core.errors import StageFailed, UserError
from ..core.gpu import Gpu, visible_gpus
from ..core.options import as_dict, option
from ..core.rundir import RunContext, describe_path, fingerprint
from ..media.ffmpeg import retime_trim_mux_argv
from ..media.probe import probe_video
from . import preprocess
from .common import RunOptions, absolute, ckpt_option, ensure_not_inside, wan22_option
from .common import main as stage_main

STAGE = "generate"
BIG_GPU_MIB = 80 * 10**9 // 2**20  # 80 GB: T5 (11 GB) stays beside the DiT (35 GB) and its activations
LORA_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt")
# LightX2V's config for Animate with its step-distill LoRA (configs/wan22/wan_animate_lora.json):
# 4 steps, shift 5.0, guide 1.0 (no CFG); their scheduler is UniPC like upstream's default solver.
PRESETS = {"fast": {"sample_steps": 4, "sample_shift": 5.0, "sample_guide_scale": 1.0}}
WORKER_MODES = ("auto", "start", "off")
HOW_NOT_WHAT = ("worker",)  # options that change how a job runs, not its result: left out of the resume fingerprint
FAST_LORA_HINT = ("the LightX2V 4-step distill LoRA for Wan2.1-I2V-14B, e.g. "
                  "lightx2v/Wan2.1-Distill-Loras: wan2.1_i2v_lora_rank64_lightx2v_4step.safetensors")


def parse_lora_list(text: str) -> str:
    """`PATH[:WEIGHT] ...` → the same list spelled `PATH:WEIGHT PATH:WEIGHT` (paths without spaces)."""
    words = text.split()
    if not words:
        raise ValueError("give one or more LoRA files, PATH or PATH:WEIGHT")
    return " ".join(format_lora_arg(*parse_lora_arg(word)) for word in words)


@dataclass(kw_only=True)
class GenerateOptions:
    """Generation (official generate.py --task animate-14B)"""

    src_root_path: str = option("process_results", label="Preprocessing folder",
                                help="the preprocessing folder (--save_path of stage 1)",
                                widget="dir", group="inputs")
    save_file: str = option("output_wanimate.mp4", aliases=("--output_path",), label="Output video",
                            help="output video",
                            group="outputs")
    replace: bool = option(False, label="Mode", switch=("Animate", "Replace"),
                           help="replace mode (the folder must come from run_preprocessing.py --replace)",
                           group="mode")
    use_relighting_lora: bool = option(False, label="Relight the character",
                                       help="replace mode: relight the character to the scene "
                                       "(relighting_lora.ckpt)", group="mode")
    prompt: str | None = option(None, help="text prompt; upstream default '视频中的人在做动作' (our launcher "
                                "makes it reach the model)", widget="textarea", group="sampling")
    negative_prompt: str | None = option(None, help="negative prompt; default: the config's", widget="textarea",
                                         group="sampling")
    sample_steps: int | None = option(None, label="Sampling steps",
                                      help="sampling steps (upstream default 20)", group="sampling")
    sample_guide_scale: float | None = option(None, label="Guidance scale",
                                              help="CFG scale (upstream default 1.0 = no CFG; >1 doubles "
                                              "the compute)", group="sampling")
    sample_shift: float | None = option(None, label="Flow shift",
                                        help="flow shift (upstream default 5.0)", group="sampling")
    sample_solver: str = option("unipc", choices=("unipc", "dpm++"), label="Sampler", help="sampler", group="sampling")
    seed: int = option(-1, help="seed; -1 picks one at random and records it in the manifest", group="sampling")
    frame_num: int = option(77, label="Frames per clip", help="frames per generated clip, 4n+1", group="sampling")
    refert_num: int = option(1, choices=(1, 5), label="Frames carried between clips",
                             help="frames carried over between clips as temporal guidance",
                             group="sampling")
    preset: str | None = option(None, choices=tuple(PRESETS),
                                help="fast = 4 steps, shift 5.0, guide 1.0 for a 4-step distill LoRA given with "
                                "--lora (LightX2V's Animate settings); explicit --sample_* values win",
                                group="performance")
    lora: str | None = option(None, nargs="+", repeat=True, parse=parse_lora_list,
                              help="LoRA file(s) merged into the DiT weights at load, PATH or PATH:WEIGHT (weight "
                              "1.0), several after one --lora; kohya, ComfyUI/LightX2V and diffusers key names",
                              group="performance", server="weights", label="LoRA files")
    no_offload: bool = option(False, label="Keep T5 on the GPU",
                              help="keep T5 on the GPU after encoding; automatic on a GPU of 80 GB or more "
                              "(upstream's single-GPU default moves it back to the CPU)", group="performance")
    t5_cpu: bool = option(False, label="T5 on the CPU",
                          help="run the T5 text encoder on the CPU (saves ~11 GB VRAM)", group="performance")
    convert_model_dtype: bool = option(False, label="Convert weights to the compute dtype",
                                       help="convert model weights to the compute dtype",
                                       group="performance")
    multi_gpu: bool = option(False, label="Several GPUs",
                             help="torchrun with FSDP + Ulysses over several GPUs", group="performance")
    nproc_per_node: int = option(0, label="Number of GPUs",
                                 help="GPUs for --multi_gpu; 0 = every visible GPU", group="performance")
    attention: str = option("auto", choices=("auto", "fast", "cudnn", "flash", "fa3", "fa3-fp8", "sage", "sdpa"),
                            label="Attention kernels",
                            help="attention kernels: auto = fa3 when importable, else cudnn (lossless); fast = "
                            "fa3-fp8 when FA3 imports, else cudnn (LOSSY); cudnn = torch SDPA, cuDNN kernel first (no "
                            "package needed); sdpa = torch SDPA, PyTorch's own kernel choice; flash = upstream "
                            "unchanged (flash_attn); fa3 = FlashAttention-3 in the DiT (scripts/build_fa3.sh); "
                            "fa3-fp8 = FA3's FP8 kernel (LOSSY); sage = SageAttention in the DiT (LOSSY)",
                            group="performance")
    compile: bool = option(False, help="torch.compile each DiT block (single GPU; the first step pays the "
                           "compilation, ~1-5 min)", group="performance")
    fp8: bool = option(False, label="FP8 linears",
                       help="float8 linears in the DiT blocks via torchao (LOSSY; single GPU; needs torchao "
                       "<= 0.15 in the Wan2.2 Python: newer ones break diffusers 0.35's import; pays off only with "
                       "--compile)", group="performance")
    vae_bf16: bool = option(False, label="VAE in bf16",
                            help="run the VAE in bf16 autocast instead of float32 (LOSSY, ~1.4x faster VAE)",
                            group="performance")
    worker: str = option("auto", choices=WORKER_MODES, label="Warm worker",
                         help="auto = run on a warm generation worker that already holds these models (same "
                         "checkpoint, LoRAs, attention, compile/fp8), else a fresh process as before; start = the "
                         "same, and start such a worker when none runs (it keeps the models loaded for the next "
                         "jobs and exits RAV_WORKER_IDLE_S, default 900 s, after the last); off = always a fresh "
                         "process. Single-GPU jobs only (--multi_gpu runs fresh)", group="performance")
    audio_from: str | None = option(None, label="Audio from",
                                    help="take the audio from this file instead of the preprocessed "
                                    "source video", widget="video", group="outputs")
    wan22_dir: str = wan22_option()
    ckpt_dir: str = ckpt_option()


def validate(opts: GenerateOptions) -> None:
    wan_generate.check_frame_args(opts.frame_num, opts.refert_num)
    if opts.use_relighting_lora and not opts.replace:
        raise UserError("--use_relighting_lora only applies in replace mode; add --replace or drop it")
    if opts.sample_steps is not None and opts.sample_steps < 1:
        raise UserError(f"--sample_steps {opts.sample_steps}: must be at least 1")
    if opts.preset == "fast" and not opts.lora:
        raise UserError(f"--preset fast samples 4 steps, which needs a step-distill LoRA: add --lora PATH "
                        f"({FAST_LORA_HINT})")
    if opts.multi_gpu and (opts.compile or opts.fp8):
        raise UserError("--compile and --fp8 are single-GPU options (FSDP shards the DiT blocks); drop them or "
                        "--multi_gpu")


def apply_preset(opts: GenerateOptions) -> GenerateOptions:
    """The preset's sampling values for every --sample_* option left unset."""
    if not opts.preset:
        return opts
    unset = {name: value for name, value in PRESETS[opts.preset].items() if getattr(opts, name) is None}
    return dataclasses.replace(opts, **unset)


def lora_files(opts: GenerateOptions) -> tuple[tuple[Path, float], ...]:
    """The --lora files as absolute paths with weights (syntax already checked when the option was parsed)."""
    return tuple((absolute(path), weight) for path, weight in map(parse_lora_arg, (opts.lora or "").split()))


def check_lora_file(path: Path) -> None:
    if not path.is_file():
        raise UserError(f"--lora {path}: file not found")
    if path.suffix not in LORA_SUFFIXES:
        raise UserError(f"--lora {path}: expected one of {', '.join(LORA_SUFFIXES)}")
    if path.suffix == ".safetensors":
        try:
            keys = safetensors_keys(path)
            count = lora_key_count(keys)
        except LoraError as exc:
            raise UserError(f"--lora {exc}") from None
        if not count:
            raise UserError(f"--lora {path}: no LoRA weights in it (no lora_down/lora_up, lora_A/lora_B or "
                            ".diff keys); pass a LoRA file")


def offload_t5(opts: GenerateOptions, nproc: int, gpus: list[Gpu]) -> bool:
    """generate.py --offload_model: upstream defaults to True on one GPU, which only moves T5 (11 GB) back to
    the CPU after encoding; on a GPU of 80 GB or more everything fits, so we keep it there."""
    if opts.no_offload or nproc > 1:
        return False
    return not (gpus and gpus[0].memory_mib >= BIG_GPU_MIB)


def gpu_count(opts: GenerateOptions) -> int:
    if not opts.multi_gpu:
        return 1
    nproc = opts.nproc_per_node or len(visible_gpus())
    if nproc < 2:
        raise UserError("--multi_gpu needs at least 2 GPUs; pass --nproc_per_node N or drop --multi_gpu")
    return nproc


def run(opts: GenerateOptions, run_opts: RunOptions, *, ctx: RunContext, resume: bool = False,
        planned: dict | None = None) -> Path:
    """Generate into `save_file`. With `resume`, a finished run of the same inputs and options in this
    run directory is kept. `planned` stands in for the preprocessing record when a dry-run pipeline
    describes this stage before preprocessing has produced anything."""
    validate(opts)
    opts = apply_preset(opts)
    wan22, ckpt = absolute(opts.wan22_dir), absolute(opts.ckpt_dir)
    src_root, save_file = absolute(opts.src_root_path), absolute(opts.save_file)
    loras = lora_files(opts)
    inputs = {"src_root_path": describe_path(src_root)}
    if loras:
        inputs["lora"] = [describe_path(path) for path, _ in loras]
    upstream = {"Wan2.2": {"path": str(wan22), "commit": upstream_commit(wan22)}, "checkpoint": str(ckpt)}
    fp = fingerprint([{k: v for k, v in as_dict(opts).items() if k not in HOW_NOT_WHAT}, inputs, upstream])
    if resume and not ctx.dry_run and ctx.is_done(STAGE, fp):
        ctx.say(f"generate: up to date, keeping {save_file}")
        return save_file
    refuse_overwrite(save_file, run_opts.overwrite or ctx.owns(STAGE, save_file))
    ensure_not_inside(save_file, [src_root] + ([absolute(opts.audio_from)] if opts.audio_from else []))
    nproc = gpu_count(opts)
    try:
        wan_generate.check_wan22(wan22)
        wan_generate.check_checkpoint(ckpt, use_relighting_lora=opts.use_relighting_lora)
        wan_generate.check_src_root(src_root, replace=opts.replace)
        for path, _ in loras:
            check_lora_file(path)
    except UserError as exc:
        if not ctx.dry_run:
            raise
        ctx.say(f"warning: {exc}")

    record = preprocess.read_record(src_root) or planned or {}
    pose = probe_video(src_root / "src_pose.mp4", count_frames=True) if (src_root / "src_pose.mp4").is_file() else None
    if pose is not None:
        wan_generate.check_parallel(nproc, frame_num=opts.frame_num, width=pose.width, height=pose.height)
    fps = Fraction(record["fps"]) if record.get("fps") else (pose.fps if pose else Fraction(30))
    frames = pose.frames if pose else record.get("frames", 0)
    audio = resolve_audio(opts, record, dry_run=ctx.dry_run)
    seed = opts.seed if opts.seed >= 0 else random.randint(0, 2**31 - 1)
    gpus = visible_gpus() if nproc == 1 and not opts.no_offload else []
    offload = offload_t5(opts, nproc, gpus)
    if gpus and not offload:
        ctx.say(f"generate: {gpus[0].name} has {gpus[0].memory_mib / 1024:.0f} GiB: T5 stays on the GPU "
                "(no --offload_model)")
    raw = ctx.scratch(STAGE) / "generated_30fps_raw.mp4"
    call = wan_generate.GenerateCall(
        wan22_dir=wan22, ckpt_dir=ckpt, src_root_path=src_root, save_file=raw, replace=opts.replace,
        use_relighting_lora=opts.use_relighting_lora, prompt=opts.prompt, negative_prompt=opts.negative_prompt,
        sample_steps=opts.sample_steps, sample_guide_scale=opts.sample_guide_scale, sample_shift=opts.sample_shift,
        sample_solver=opts.sample_solver, seed=seed, frame_num=opts.frame_num, refert_num=opts.refert_num,
        offload_model=offload, t5_cpu=opts.t5_cpu, convert_model_dtype=opts.convert_model_dtype, nproc=nproc,
        attention=opts.attention, loras=loras, compile=opts.compile, fp8=opts.fp8,
        vae_bf16=opts.vae_bf16)
    finish = retime_trim_mux_argv(raw, save_file, fps=fps, frames=frames or 1, audio_from=audio)
    runner = worker_runner(opts.worker, call, ctx)
    if ctx.dry_run:
        ctx.step("generate (official generate.py via launcher)", call.argv(), stage=STAGE, runner=runner)
        ctx.step(f"retime to {fps} fps, trim to {frames or 'the source'} frames"
                 f"{', mux source audio' if audio else ''}", finish, stage=STAGE)
        return save_file

    resolved = {**as_dict(opts), "seed": seed, "nproc": nproc, "offload_model": offload}
    with ctx.running(STAGE, options=resolved, inputs=inputs, upstream=upstream, fp=fp, outputs=[save_file]):
        raw.unlink(missing_ok=True)
        ctx.step("generate (official generate.py via launcher)", call.argv(), stage=STAGE, expected_outputs=[raw],
                 cwd=ctx.scratch(STAGE), runner=runner)
        check_generated(raw, expected_frames=frames)
        with atomic_file(save_file) as tmp:
            ctx.step("retime, trim, mux audio", retime_trim_mux_argv(raw, tmp, fps=fps, frames=frames, audio_from=audio),
                     stage=STAGE, expected_outputs=[tmp])
            check_final(tmp, fps=fps, frames=frames, audio=audio is not None)
    ctx.say(f"generation done: {save_file} ({frames} frames at {fps} fps{', with audio' if audio else ''}, seed {seed})")
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
        ctx.say(f"generate: started a warm worker (pid {handle.pid}): this job loads the models, later jobs with "
                f"the same model options reuse them; it exits {workers.idle_timeout():.0f} s after its last job")
        return workers.WorkerRunner(handle)
    if others:
        ctx.say(f"generate: {len(others)} warm worker(s) with other model options hold GPU memory; if this job runs "
                "out of memory, stop them: python -m replace_actor_video.adapters.wan_worker_client stop --all")
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


def check_generated(raw: Path, *, expected_frames: int) -> None:
    """Upstream save_video() swallows its own errors and exits 0, so check the file decodes."""
    try:
        info = probe_video(raw, count_frames=True)
    except UserError as exc:
        raise StageFailed(f"generate.py exited 0 but its video is unreadable ({exc}); see the generate log") from None
    if info.frames < expected_frames:
        raise StageFailed(f"generate.py wrote {info.frames} frames, expected {expected_frames}; see the generate log")


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


def main(argv: list[str] | None = None) -> int:
    return stage_main(description="Stage 2: Wan2.2-Animate generation (official generate.py, animate-14B).",
                      option_classes=[GenerateOptions, RunOptions], run=run, argv=argv, stage=STAGE)


if __name__ == "__main__":
    sys.exit(main())
