"""Wan2.2's official `generate.py --task animate-14B`, run through our launcher (runtime/launcher.py): the
generation options, the launcher + generate.py argv built from them, the checkpoint and input checks and the
rules upstream's parallel run imposes.

Traps handled here (each read in the Wan2.2 source at the pinned commit; README "Troubleshooting"):
- `--refert_num` defaults to 77, which WanAnimate.generate rejects: we always pass 1 or 5;
- without `--save_file` the output lands in the cwd under a generated name: we always pass it;
- `--prompt` never reaches WanAnimate.generate: the launcher passes it (see runtime/launcher.py);
- Animate hard-requires flash_attn: the launcher routes attention to torch SDPA (cuDNN first), FA3 or Sage;
- `--frame_num` must be 4n+1 (not checked upstream); Ulysses needs N | 40 heads and N | sequence length.

Speed options the launcher applies when upstream builds the DiT (upstream has none of them): LoRA files
merged into the weights (`--lora PATH:WEIGHT`, e.g. the LightX2V 4-step distill LoRA), float8 linears
(`--fp8`, torchao) and torch.compile of each block (`--compile`). Also the launcher's: the colour match inside
the clip loop (`--color_match`, runtime/clip_color.py) and the memory profiles (`--memory_profile`, runtime/memory.py;
`auto` is resolved by the stage from the free GPU memory with memory_plan.py before the call is built).

Each option says which argv it reaches (`upstream=GENERATE` or `upstream=LAUNCHER`): GenerateCall builds
both from the options, so an option declared here reaches the upstream process with no other edit.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ...core import config
from ...core.errors import StageFailed, UserError
from ...core.options import option, upstream_args
from ...media.probe import probe_video
from .runtime.color_match import ANCHORS as COLOR_MATCH_ANCHORS
from .runtime.color_match import METHODS as COLOR_MATCH_METHODS
from .runtime.lora import LoraError, format_lora_arg, lora_key_count, parse_lora_arg, safetensors_keys

SCRIPT = "generate.py"
LAUNCHER_FILE = Path(__file__).with_name("runtime") / "launcher.py"
GENERATE, LAUNCHER = "generate.py", "launcher"  # the two argvs options are passed to (`upstream=`)
NUM_HEADS = 40  # wan/configs/wan_animate_14B.py
MAX_FRAME_NUM = 161  # --frame_num: at most this (about twice the 77 Animate is trained on; memory grows with it)
INPUTS_ANIMATE = ("src_pose.mp4", "src_face.mp4", "src_ref.png")
INPUTS_REPLACE = INPUTS_ANIMATE + ("src_bg.mp4", "src_mask.mp4")
CHECKPOINT_FILES = (
    "config.json",
    "diffusion_pytorch_model.safetensors.index.json",
    "models_t5_umt5-xxl-enc-bf16.pth",
    "models_clip_open-clip-xlm-roberta-large-vit-huge-14.pth",
    "Wan2.1_VAE.pth",
    "google/umt5-xxl",
    "xlm-roberta-large",
)
LORA_FILE = "relighting_lora.ckpt"
# LightX2V's config for Animate with its step-distill LoRA (configs/wan22/wan_animate_lora.json):
# 4 steps, shift 5.0, guide 1.0 (no CFG); their scheduler is UniPC like upstream's default solver.
PRESETS = {"fast": {"sample_steps": 4, "sample_shift": 5.0, "sample_guide_scale": 1.0}}
FAST_LORA_HINT = (
    "the LightX2V 4-step distill LoRA for Wan2.1-I2V-14B, e.g. "
    "lightx2v/Wan2.1-Distill-Loras: wan2.1_i2v_lora_rank64_lightx2v_4step.safetensors"
)
LORA_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt")
ATTENTION_ROUTES = ("auto", "fast", "cudnn", "flash", "fa3", "fa3-fp8", "sage", "sdpa")
WORKER_MODES = ("auto", "start", "off")
COLOR_MATCH_DEFAULT = "mkl"  # docs/bench/2026-12-01/color_match.md: removes a per-clip shift best, changes least
MEMORY_PROFILES = ("auto", "full", "balanced", "low")  # the launcher takes all but auto, which the stage resolves
STREAMED_PROFILES = ("balanced", "low")  # the DiT's blocks streamed from CPU memory (runtime/memory.py)


def parse_lora_list(text: str) -> str:
    """`PATH[:WEIGHT] ...` → the same list spelled `PATH:WEIGHT PATH:WEIGHT` (paths without spaces)."""
    words = text.split()
    if not words:
        raise ValueError("give one or more LoRA files, PATH or PATH:WEIGHT")
    return " ".join(format_lora_arg(*parse_lora_arg(word)) for word in words)


@dataclass(kw_only=True)
class GenerateOptions:
    """Generation (official generate.py --task animate-14B)"""

    src_root_path: str = option(
        "process_results",
        label="Preprocessing folder",
        help="the preprocessing folder (--save_path of stage 1)",
        widget="dir",
        group="inputs",
        upstream=GENERATE,
    )
    save_file: str = option(
        "output_wanimate.mp4",
        aliases=("--output_path",),
        label="Output video",
        help="output video",
        group="outputs",
        upstream=GENERATE,
    )
    replace: bool = option(
        False,
        label="Mode",
        switch=("Animate", "Replace"),
        help="replace mode (the folder must come from run_preprocessing.py --replace)",
        group="mode",
        upstream=GENERATE,
        upstream_flag="--replace_flag",
    )
    use_relighting_lora: bool = option(
        False,
        label="Relight the character",
        help="replace mode: relight the character to the scene (relighting_lora.ckpt)",
        group="mode",
        upstream=GENERATE,
    )
    prompt: str | None = option(
        None,
        help="text prompt; upstream default '视频中的人在做动作' (our launcher makes it reach the model)",
        widget="textarea",
        group="sampling",
        upstream=GENERATE,
    )
    negative_prompt: str | None = option(
        None, help="negative prompt; default: the config's", widget="textarea", group="sampling", upstream=LAUNCHER
    )
    sample_steps: int | None = option(
        None, label="Sampling steps", help="sampling steps (upstream default 20)", group="sampling", upstream=GENERATE
    )
    sample_guide_scale: float | None = option(
        None,
        label="Guidance scale",
        help="CFG scale (upstream default 1.0 = no CFG; >1 doubles the compute)",
        group="sampling",
        upstream=GENERATE,
    )
    sample_shift: float | None = option(
        None, label="Flow shift", help="flow shift (upstream default 5.0)", group="sampling", upstream=GENERATE
    )
    sample_solver: str = option(
        "unipc", choices=("unipc", "dpm++"), label="Sampler", help="sampler", group="sampling", upstream=GENERATE
    )
    seed: int = option(
        -1,
        help="seed; -1 picks one at random and records it in the manifest",
        group="sampling",
        upstream=GENERATE,
        upstream_flag="--base_seed",
    )
    frame_num: int = option(
        77, label="Frames per clip", help="frames per generated clip, 4n+1", group="sampling", upstream=GENERATE
    )
    refert_num: int = option(
        1,
        choices=(1, 5),
        label="Frames carried between clips",
        help="frames carried over between clips as temporal guidance",
        group="sampling",
        upstream=GENERATE,
    )
    color_match: str = option(
        COLOR_MATCH_DEFAULT,
        choices=COLOR_MATCH_METHODS,
        label="Colour match",
        help="colour-match each clip inside the clip loop (see --color_match_anchor), before "
        "its last frames guide the next clip: stops colour drift in long videos; replace mode "
        "changes only the generated person: mkl = mean+covariance (least change), mvgd = "
        "mean+covariance (Cholesky), reinhard = per-channel in lαβ, hm = histograms",
        group="quality",
        upstream=LAUNCHER,
    )
    color_match_strength: float = option(
        1.0,
        label="Colour match strength",
        help="how far each clip moves to its reference colours, 0..1",
        group="quality",
        upstream=LAUNCHER,
    )
    color_match_anchor: str = option(
        "join",
        choices=COLOR_MATCH_ANCHORS,
        label="Colour match reference",
        help="what each clip is matched to: join = the guide frames it was given (its "
        "re-rendering of them shows exactly the drift its join added; real colour "
        "changes are kept); first = the whole first clip (also removes drift inside "
        "clips, but pulls real colour changes back)",
        group="quality",
        upstream=LAUNCHER,
    )
    preset: str | None = option(
        None,
        choices=tuple(PRESETS),
        help="fast = 4 steps, shift 5.0, guide 1.0 for a 4-step distill LoRA given with "
        "--lora (LightX2V's Animate settings); explicit --sample_* values win",
        group="performance",
    )
    lora: str | None = option(
        None,
        nargs="+",
        repeat=True,
        parse=parse_lora_list,
        server="weights",
        label="LoRA files",
        help="LoRA file(s) merged into the DiT weights at load, PATH or PATH:WEIGHT (weight "
        "1.0), several after one --lora; kohya, ComfyUI/LightX2V and diffusers key names",
        group="performance",
        upstream=LAUNCHER,
    )  # a text box in the UI: weights may follow
    no_offload: bool = option(
        False,
        label="Keep T5 on the GPU",
        help="keep T5 on the GPU after encoding; automatic on a GPU of 80 GB or more "
        "(upstream's single-GPU default moves it back to the CPU)",
        group="performance",
    )
    t5_cpu: bool = option(
        False,
        label="T5 on the CPU",
        help="run the T5 text encoder on the CPU (saves ~11 GB VRAM)",
        group="performance",
        upstream=GENERATE,
    )
    convert_model_dtype: bool = option(
        False,
        label="Convert weights to the compute dtype",
        help="convert model weights to the compute dtype",
        group="performance",
        upstream=GENERATE,
    )
    multi_gpu: bool = option(
        False, label="Several GPUs", help="torchrun with FSDP + Ulysses over several GPUs", group="performance"
    )
    nproc_per_node: int = option(
        0, label="Number of GPUs", help="GPUs for --multi_gpu; 0 = every visible GPU", group="performance"
    )
    attention: str = option(
        "auto",
        choices=ATTENTION_ROUTES,
        label="Attention kernels",
        help="attention kernels: auto = fa3 when importable, else cudnn (lossless); fast = "
        "fa3-fp8 when FA3 imports, else cudnn (LOSSY); cudnn = torch SDPA, cuDNN kernel first (no "
        "package needed); sdpa = torch SDPA, PyTorch's own kernel choice; flash = upstream "
        "unchanged (flash_attn); fa3 = FlashAttention-3 in the DiT (scripts/build_fa3.sh); "
        "fa3-fp8 = FA3's FP8 kernel (LOSSY); sage = SageAttention in the DiT (LOSSY)",
        group="performance",
        upstream=LAUNCHER,
    )
    memory_profile: str = option(
        "auto",
        choices=MEMORY_PROFILES,
        label="Memory profile",
        help="full = upstream (the whole DiT on the GPU: 80 GB cards at 720p); balanced = "
        "as many DiT blocks kept on the GPU as fit, the others streamed from CPU RAM (block "
        "swap); low = every block streamed, T5 on the CPU (24 GB cards); auto = full when it "
        "fits the free GPU memory at this resolution, else low (low/balanced need ~64 GB of "
        "RAM)",
        group="performance",
        upstream=LAUNCHER,
    )
    compile: bool = option(
        False,
        help="torch.compile each DiT block (single GPU; the first step pays the compilation, ~1-5 min)",
        group="performance",
        upstream=LAUNCHER,
    )
    fp8: bool = option(
        False,
        label="FP8 linears",
        help="float8 linears in the DiT blocks via torchao (LOSSY; single GPU; needs torchao "
        "<= 0.15 in the Wan2.2 Python: newer ones break diffusers 0.35's import; pays off only with "
        "--compile)",
        group="performance",
        upstream=LAUNCHER,
    )
    vae_bf16: bool = option(
        False,
        label="VAE in bf16",
        help="run the VAE in bf16 autocast instead of float32 (LOSSY, ~1.4x faster VAE)",
        group="performance",
        upstream=LAUNCHER,
    )
    worker: str = option(
        "auto",
        choices=WORKER_MODES,
        label="Warm worker",
        help="auto = run on a warm generation worker that already holds these models (same "
        "checkpoint, LoRAs, attention, compile/fp8), else a fresh process as before; start = the "
        "same, and start such a worker when none runs (it keeps the models loaded for the next "
        "jobs and exits RAV_WORKER_IDLE_S, default 900 s, after the last); off = always a fresh "
        "process. Single-GPU jobs only (--multi_gpu runs fresh)",
        group="performance",
    )
    audio_from: str | None = option(
        None,
        label="Audio from",
        help="take the audio from this file instead of the preprocessed source video",
        widget="video",
        group="outputs",
    )
    wan22_dir: str = config.WAN22.option(upstream=LAUNCHER)
    ckpt_dir: str = config.CHECKPOINT.option(help="Wan2.2-Animate-14B checkpoint folder", upstream=GENERATE)


def validation(opts: GenerateOptions) -> Iterator[tuple[str, str]]:
    """(option, one-line message) for every option value generation cannot run with."""
    try:
        check_frame_args(opts.frame_num, opts.refert_num)
    except UserError as exc:
        yield "frame_num", str(exc)
    if opts.use_relighting_lora and not opts.replace:
        yield "use_relighting_lora", "--use_relighting_lora only applies in replace mode; add --replace or drop it"
    if opts.sample_steps is not None and opts.sample_steps < 1:
        yield "sample_steps", f"--sample_steps {opts.sample_steps}: must be at least 1"
    if opts.sample_shift is not None and not opts.sample_shift > 0:  # sigma = shift*s / (1 + (shift-1)*s)
        yield "sample_shift", f"--sample_shift {opts.sample_shift:g}: must be above 0 (upstream default 5.0)"
    if opts.sample_guide_scale is not None and opts.sample_guide_scale < 0:
        yield "sample_guide_scale", f"--sample_guide_scale {opts.sample_guide_scale:g}: must be 0 or more (1 = no CFG)"
    if opts.preset == "fast" and not opts.lora:
        yield (
            "lora",
            (f"--preset fast samples 4 steps, which needs a step-distill LoRA: add --lora PATH ({FAST_LORA_HINT})"),
        )
    if not 0.0 <= opts.color_match_strength <= 1.0:
        yield "color_match_strength", f"--color_match_strength {opts.color_match_strength:g}: must be between 0 and 1"
    try:
        check_memory_profile(opts.memory_profile, fp8=opts.fp8, multi_gpu=opts.multi_gpu)
    except UserError as exc:
        yield "memory_profile", str(exc)
    if opts.multi_gpu and (opts.compile or opts.fp8):
        yield (
            "multi_gpu",
            ("--compile and --fp8 are single-GPU options (FSDP shards the DiT blocks); drop them or --multi_gpu"),
        )
    if opts.nproc_per_node < 0:
        yield "nproc_per_node", f"--nproc_per_node {opts.nproc_per_node}: a GPU count, or 0 for every visible GPU"
    elif opts.multi_gpu and opts.nproc_per_node:
        try:
            check_heads(opts.nproc_per_node)
        except UserError as exc:
            yield "nproc_per_node", str(exc)


def validate(opts: GenerateOptions) -> None:
    for _, message in validation(opts):
        raise UserError(message)


def check_memory_profile(profile: str, *, fp8: bool, multi_gpu: bool, why: str = "") -> None:
    """What a streamed profile cannot run with (checked for the requested profile, and again once auto is resolved:
    `why` says how it was chosen)."""
    if profile not in STREAMED_PROFILES:
        return
    chosen = f"--memory_profile {profile}" + (f" ({why})" if why else "")
    if fp8:
        raise UserError(
            f"--fp8 with {chosen}: torchao's float8 weights cannot be streamed between CPU and GPU; "
            "drop --fp8 or use --memory_profile full"
        )
    if multi_gpu:
        raise UserError(
            f"{chosen} is for one GPU (--multi_gpu already splits the weights over the GPUs with "
            "FSDP); drop one of them"
        )


def apply_preset(opts: GenerateOptions) -> GenerateOptions:
    """The preset's sampling values for every --sample_* option left unset."""
    if not opts.preset:
        return opts
    unset = {name: value for name, value in PRESETS[opts.preset].items() if getattr(opts, name) is None}
    return dataclasses.replace(opts, **unset)


@dataclass(frozen=True)
class GenerateCall:
    """The launcher + generate.py command for resolved options: absolute paths, the seed drawn, the preset
    applied, `save_file` = the raw file upstream writes; plus what the stage decides from the machine."""

    opts: GenerateOptions
    offload_model: bool | None  # generate.py --offload_model (None: upstream's default)
    nproc: int

    def __post_init__(self) -> None:
        if self.opts.memory_profile not in MEMORY_PROFILES[1:]:
            raise ValueError(
                f"GenerateCall needs a resolved memory profile ({', '.join(MEMORY_PROFILES[1:])}), not "
                f"{self.opts.memory_profile!r}: stages/generate.py resolves auto from the GPU"
            )

    def generate_args(self) -> list[str]:
        """The argument list of the official generate.py."""
        args = ["--task", "animate-14B", *upstream_args(self.opts, GENERATE)]
        if self.offload_model is not None:
            args += ["--offload_model", str(self.offload_model)]
        if self.nproc > 1:
            args += ["--dit_fsdp", "--t5_fsdp", "--ulysses_size", str(self.nproc)]
        return args

    def argv(self, python: str = sys.executable) -> list[str]:
        if self.nproc > 1:
            head = [
                python,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nnodes",
                "1",
                "--nproc_per_node",
                str(self.nproc),
            ]
        else:
            head = [python]
        return [*head, str(LAUNCHER_FILE), *upstream_args(self.opts, LAUNCHER), "--", *self.generate_args()]


def check_wan22(wan22_dir: Path) -> None:
    if not (wan22_dir / SCRIPT).is_file():
        raise UserError(f"{wan22_dir / SCRIPT} not found; clone Wan2.2 with ./install.sh or pass --wan22_dir")


def check_checkpoint(ckpt_dir: Path, *, use_relighting_lora: bool) -> None:
    missing = [name for name in CHECKPOINT_FILES if not (ckpt_dir / name).exists()]
    if not any(ckpt_dir.glob("diffusion_pytorch_model*.safetensors")):
        missing.append("diffusion_pytorch_model-*.safetensors")
    if use_relighting_lora and not (ckpt_dir / LORA_FILE).is_file():
        missing.append(LORA_FILE)
    if missing:
        raise UserError(
            f"{ckpt_dir}: missing {', '.join(missing)}; download Wan-AI/Wan2.2-Animate-14B with "
            f"./install.sh or pass --ckpt_dir"
        )


def check_src_root(src_root: Path, *, replace: bool) -> None:
    if not src_root.is_dir():
        raise UserError(f"{src_root}: not a directory; pass the --save_path folder of run_preprocessing.py")
    names = INPUTS_REPLACE if replace else INPUTS_ANIMATE
    missing = [n for n in names if not (src_root / n).is_file()]
    if missing:
        hint = (
            "it was preprocessed in animate mode; rerun run_preprocessing.py with --replace"
            if replace and set(missing) <= {"src_bg.mp4", "src_mask.mp4"}
            else "rerun run_preprocessing.py"
        )
        raise UserError(f"{src_root}: missing {', '.join(missing)}; {hint}")


def check_frame_args(frame_num: int, refert_num: int) -> None:
    if frame_num < 5 or (frame_num - 1) % 4 or frame_num > MAX_FRAME_NUM:
        raise UserError(f"--frame_num {frame_num}: must be 4n+1 from 5 to {MAX_FRAME_NUM} (e.g. 77, 81, 49)")
    if refert_num not in (1, 5):
        raise UserError(f"--refert_num {refert_num}: must be 1 or 5 (upstream asserts it)")
    if refert_num >= frame_num:
        raise UserError(f"--refert_num {refert_num} must be smaller than --frame_num {frame_num}")


def check_clip_frames(frames: int, refert_num: int) -> None:
    """WanAnimate.generate needs more frames than it carries over between clips: with `frames` <= refert_num its
    clip loop never runs and it dies on torch.cat([]) after loading 14B weights (wan/animate.py)."""
    if frames <= refert_num:
        raise UserError(
            f"the preprocessing gives {frames} frame(s); generation needs at least {refert_num + 1} "
            f"(more than --refert_num {refert_num}): use a longer video or a higher --fps"
        )


def clip_count(frames: int, frame_num: int, refert_num: int) -> int:
    """How many clips WanAnimate.generate samples for `frames` frames (get_valid_len pads the last one)."""
    return max(1, math.ceil((frames - refert_num) / (frame_num - refert_num)))


def sequence_length(frame_num: int, width: int, height: int) -> int:
    """DiT tokens per clip: (latent frames + 1 reference frame) × (H/16) × (W/16)."""
    return ((frame_num - 1) // 4 + 2) * (height // 16) * (width // 16)


def check_heads(nproc: int) -> None:
    """generate.py asserts num_heads % ulysses_size == 0 (and ulysses_size == the GPU count)."""
    if nproc > 1 and NUM_HEADS % nproc:
        good = ", ".join(str(n) for n in range(2, NUM_HEADS + 1) if NUM_HEADS % n == 0)
        raise UserError(f"--nproc_per_node {nproc}: Ulysses needs a divisor of the 40 attention heads ({good})")


def check_parallel(nproc: int, *, frame_num: int, width: int, height: int) -> None:
    """The heads rule, and the sequence one: the face blocks regroup the gathered tokens by latent frame, which
    only works when the token count splits evenly over the GPUs (no padding)."""
    if nproc <= 1:
        return
    check_heads(nproc)
    tokens = sequence_length(frame_num, width, height)
    if tokens % nproc:
        raise UserError(
            f"--nproc_per_node {nproc}: the sequence of {tokens} tokens ({width}x{height}, "
            f"frame_num {frame_num}) does not split evenly; use another GPU count or a resolution "
            f"whose (W/16)*(H/16) is divisible by {nproc}"
        )


def lora_files(opts: GenerateOptions) -> tuple[tuple[Path, float], ...]:
    """The --lora files as absolute paths with weights (syntax already checked when the option was parsed)."""
    return tuple(
        (Path(path).expanduser().resolve(), weight) for path, weight in map(parse_lora_arg, (opts.lora or "").split())
    )


def check_lora_file(path: Path) -> None:
    if path.is_dir():
        raise UserError(f"--lora {path}: this is a folder; pass the LoRA file in it")
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
            raise UserError(
                f"--lora {path}: no LoRA weights in it (no lora_down/lora_up, lora_A/lora_B or "
                ".diff keys); pass a LoRA file"
            )


def check_generated(raw: Path, *, expected_frames: int) -> None:
    """Upstream save_video() swallows its own errors and exits 0, so check the file decodes."""
    try:
        info = probe_video(raw, count_frames=True)
    except UserError as exc:
        raise StageFailed(f"generate.py exited 0 but its video is unreadable ({exc}); see the generate log") from None
    if info.frames < expected_frames:
        raise StageFailed(f"generate.py wrote {info.frames} frames, expected {expected_frames}; see the generate log")
