"""Train Wan2.2-Animate-14B with DiffSynth-Studio: check the dataset, write an accelerate config (FSDP2,
DeepSpeed ZeRO-2/3, DDP or one-GPU layer offload), and run `accelerate launch train.py` with the arguments
of the upstream Animate scripts (upstream/diffsynth/train.py), on one machine or several.

Checkpoints are written by train.py itself, one per epoch (or every --save_steps), into --output_path as
they come, so a long run that stops keeps what it saved; rav_training.json appears there only when the
run has finished and lists the checkpoints with their hashes.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import importlib.util
import io
import json
import math
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core import config
from ..core.atomic import atomic_file
from ..core.config import upstream_commit
from ..core.errors import StageFailed, UserError
from ..core.gpu import visible_gpus
from ..core.options import as_dict, option
from ..core.paths import absolute
from ..core.process import format_argv
from ..core.rundir import RunContext, describe_path, fingerprint
from ..core.stage_cli import RunOptions
from ..core.stage_cli import main as stage_main
from ..upstream.diffsynth import mirror_train as mirror
from ..upstream.diffsynth import train as ds
from . import accelerate_config as acc

STAGE = "train"
RECORD = "rav_training.json"
TRAIN_AREA = 480 * 832  # the upstream Animate scripts train at 480x832


@dataclass(kw_only=True)
class TrainingOptions:
    """Training (DiffSynth-Studio train.py, Wan2.2-Animate-14B)"""

    dataset: str = option(
        help="dataset folder with metadata.csv (made by run_dataset.py)", widget="dir", group="inputs"
    )
    mode: str = option(
        "lora",
        choices=("lora", "full"),
        help="lora: LoRA on the DiT (rank --lora_rank on "
        f"{ds.LORA_TARGETS}); full: the whole animate adapter (pose embedding, motion and face "
        "encoders, face blocks), the DiT stays frozen",
        group="mode",
    )
    output_path: str | None = option(
        None,
        help="where train.py writes its checkpoints; default models/train/Wan2.2-Animate-14B_<mode>",
        widget="dir",
        group="outputs",
    )
    learning_rate: float | None = option(
        None, help="default: 1e-4 for lora, 1e-5 for full (the upstream scripts)", group="training"
    )
    num_epochs: int | None = option(
        None, help="default: 5 for lora, 2 for full (the upstream scripts)", group="training"
    )
    dataset_repeat: int = option(
        1, help="passes over the dataset per epoch (a checkpoint is saved per epoch)", group="training"
    )
    save_steps: int | None = option(
        None, help="save a checkpoint every N steps instead of every epoch", group="training"
    )
    gradient_accumulation_steps: int = option(1, help="optimizer step every N clips", group="training")
    num_frames: int | None = option(
        None, help="frames per clip, 4n+1; default: the dataset's clip length (81)", group="training"
    )
    height: int | None = option(
        None,
        help="training height; default: the dataset's aspect at about 480x832, "
        "or dynamic resolution when its clips differ in size",
        group="training",
    )
    width: int | None = option(None, help="training width (give both or neither)", group="training")
    max_pixels: int = option(TRAIN_AREA, help="pixel budget per frame for dynamic resolution", group="training")
    lora_rank: int = option(32, help="LoRA rank", group="training")
    lora_target_modules: str = option(ds.LORA_TARGETS, help="DiT layers that get LoRA", group="training")
    gradient_checkpointing_offload: bool = option(
        True,
        help="keep checkpointed activations in CPU RAM (upstream "
        "default; --no-gradient_checkpointing_offload is faster if "
        "memory allows)",
        group="performance",
    )
    dataset_num_workers: int = option(2, help="data-loading processes per GPU", group="performance")
    train_args: str = option(
        "",
        help="more train.py arguments as one string, checked against its parser; write "
        "it with '=': --train_args='--enable_csv_log --lora_checkpoint x.safetensors'",
        group="advanced",
    )
    train_script: str | None = option(
        None,
        help="the training script accelerate runs; default: DiffSynth-Studio's "
        "examples/wanvideo/model_training/train.py (a fork's, or tiny_train.py for "
        "smoke tests)",
        group="advanced",
    )
    python: str = option(
        sys.executable,
        help="the Python that has DiffSynth-Studio, accelerate and torch",
        group="paths",
        server="location",
    )
    diffsynth_dir: str = config.DIFFSYNTH.option(help="DiffSynth-Studio clone")
    ckpt_dir: str = config.CHECKPOINT.option(help="Wan2.2-Animate-14B checkpoint folder")


@dataclass(kw_only=True)
class LaunchOptions:
    """Launch (accelerate)"""

    strategy: str = option(
        "auto",
        choices=("auto",) + acc.STRATEGIES,
        help="fsdp: FSDP2 full shard, one unit per DiT block; zero2/zero3: DeepSpeed as "
        "DiffSynth ships it (needs deepspeed); ddp: a full copy per GPU; layer_offload: one GPU, "
        "weights stream from CPU RAM; auto = layer_offload for 1 process, fsdp otherwise",
        group="launch",
    )
    num_processes: int = option(
        0,
        help="training processes over all machines (accelerate's meaning); 0 = the "
        "visible GPUs of this machine times --num_machines",
        group="launch",
    )
    num_machines: int = option(
        1, help="machines taking part; run the same command on each with its --machine_rank", group="launch"
    )
    machine_rank: int = option(
        0, help="this machine's rank, 0 to num_machines-1 (0 writes the checkpoints)", group="launch"
    )
    main_process_ip: str | None = option(None, help="address of the rank-0 machine (several machines)", group="launch")
    main_process_port: int = option(29500, help="port on the rank-0 machine (several machines)", group="launch")
    fsdp_wrap_classes: str = option(acc.FSDP_WRAP_CLASSES, help="module classes FSDP shards one by one", group="launch")
    fsdp_offload_params: bool = option(False, help="FSDP: keep parameter shards in CPU RAM", group="launch")
    fsdp_ignored_modules: str = option(
        acc.FSDP_IGNORED_MODULES,
        help="FSDP: regex of module names (in train.py's "
        "training module) kept whole on every GPU, not sharded; default the frozen "
        "CLIP, whose 0-dim log_scale FSDP2 cannot shard; '' for none",
        group="launch",
    )


@dataclass(frozen=True)
class DatasetInfo:
    replace: bool
    rows: int
    clip_frames: int | None
    size: tuple[int, int] | None  # (width, height) when every clip has it


def read_dataset(folder: Path) -> DatasetInfo:
    """Check metadata.csv against what train.py reads: the columns, a prompt in every row (pandas turns an
    empty one into NaN) and every file present. dataset.json, when there, gives the clip length and size."""
    metadata = folder / "metadata.csv"
    if not metadata.is_file():
        raise UserError(f"{metadata} not found; build the dataset with run_dataset.py or pass --dataset")
    with open(metadata, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        columns = reader.fieldnames or []
        rows = list(reader)
    replace = ds.INPAINT in columns or ds.MASK in columns
    missing = [c for c in (ds.PROMPT, *ds.file_keys(replace)) if c not in columns]
    if missing:
        raise UserError(
            f"{metadata}: missing column(s) {', '.join(missing)}; train.py reads "
            f"{', '.join([ds.VIDEO, ds.PROMPT, *ds.file_keys(replace)[1:]])}"
        )
    if not rows:
        raise UserError(f"{metadata}: no rows; the dataset build produced no clips (see its summary)")
    for line, row in enumerate(rows, start=2):
        if not row[ds.PROMPT].strip():
            raise UserError(f"{metadata}:{line}: empty prompt (train.py would read NaN); write a prompt")
        absent = [row[k] for k in ds.file_keys(replace) if not (folder / row[k]).is_file()]
        if absent:
            raise UserError(f"{metadata}:{line}: {', '.join(absent)} not found under {folder}")
    summary_path = folder / "dataset.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    sizes = list(summary.get("sizes", {}))
    size = tuple(int(v) for v in sizes[0].split("x")) if len(sizes) == 1 else None
    return DatasetInfo(replace=replace, rows=len(rows), clip_frames=summary.get("clip_frames"), size=size)


def training_size(width: int, height: int, area: int = TRAIN_AREA) -> tuple[int, int]:
    """(width, height) with the aspect of width x height and about `area` pixels (never more than the clips
    have), multiples of 16."""
    scale = min(1.0, math.sqrt(area / (width * height)))
    return max(16, round(width * scale / 16) * 16), max(16, round(height * scale / 16) * 16)


def resolve_strategy(launch: LaunchOptions, num_processes: int) -> str:
    if launch.strategy != "auto":
        return launch.strategy
    return "layer_offload" if num_processes == 1 else "fsdp"


def validate_launch(launch: LaunchOptions, num_processes: int, strategy: str) -> None:
    if launch.num_machines < 1 or not 0 <= launch.machine_rank < launch.num_machines:
        raise UserError(
            f"--machine_rank {launch.machine_rank}: use 0 to {launch.num_machines - 1} "
            f"(--num_machines {launch.num_machines})"
        )
    if launch.num_machines > 1 and not launch.main_process_ip:
        raise UserError("several machines need --main_process_ip (the address of the machine with --machine_rank 0)")
    if num_processes < 1 or num_processes % launch.num_machines:
        raise UserError(
            f"--num_processes {num_processes}: must be a positive multiple of --num_machines "
            f"{launch.num_machines} (it counts the processes of all machines)"
        )
    try:
        re.compile(launch.fsdp_ignored_modules)
    except re.error as exc:
        raise UserError(
            f"--fsdp_ignored_modules {launch.fsdp_ignored_modules!r}: not a regular expression ({exc})"
        ) from None
    if strategy == "layer_offload" and num_processes > 1:
        raise UserError(
            "--strategy layer_offload trains on one GPU (train.py does not wrap the model then); "
            "use fsdp, zero2, zero3 or ddp for several GPUs"
        )


def num_processes_for(launch: LaunchOptions) -> int:
    return launch.num_processes or max(1, len(visible_gpus())) * launch.num_machines


def extra_train_args(text: str, ours: list[str]) -> list[str]:
    """`text` split like a shell would, refused if train.py's parser rejects it or it repeats a flag we set."""
    extra = shlex.split(text)
    if not extra:
        return []
    complaint = io.StringIO()
    try:
        with contextlib.redirect_stderr(complaint):
            mirror.build_parser().parse_args(["--dataset_base_path", "."] + extra)
    except SystemExit:
        reason = complaint.getvalue().strip().splitlines()[-1].split("error: ", 1)[-1]
        raise UserError(f"--train_args {text!r}: train.py does not accept these arguments ({reason})") from None
    flags = {a.split("=", 1)[0] for a in ours if a.startswith("--")}
    repeated = sorted({a.split("=", 1)[0] for a in extra if a.startswith("--")} & flags)
    if repeated:
        raise UserError(
            f"--train_args repeats {', '.join(repeated)}, which run_training.py sets; "
            "use the run_training.py option instead"
        )
    return extra


def has_module(python: str, name: str) -> bool:
    """Whether `python` can import `name` (checked in the training interpreter, not ours)."""
    if python == sys.executable:
        return importlib.util.find_spec(name) is not None
    probe = [python, "-c", f"import importlib.util, sys; sys.exit(importlib.util.find_spec({name!r}) is None)"]
    return subprocess.run(probe, capture_output=True).returncode == 0


def build_call(
    opts: TrainingOptions, info: DatasetInfo, dataset: Path, ckpt: Path, output: Path, strategy: str, model_paths: list
) -> ds.TrainCall:
    defaults = ds.MODE_DEFAULTS[opts.mode]
    if (opts.height is None) != (opts.width is None):
        raise UserError("give both --height and --width, or neither")
    if opts.height is not None:
        width, height = opts.width, opts.height
        if width % 16 or height % 16:
            raise UserError(f"--width {width} --height {height}: both must be multiples of 16")
    elif info.size is not None:
        width, height = training_size(*info.size)
    else:
        width = height = None
    num_frames = opts.num_frames or info.clip_frames or 81
    if num_frames % 4 != 1:
        raise UserError(f"--num_frames {num_frames}: use 4n+1 frames (81, 49, 33 ...)")
    call = ds.TrainCall(
        dataset_dir=dataset,
        metadata=dataset / "metadata.csv",
        replace=info.replace,
        model_paths=model_paths,
        tokenizer_path=ckpt / ds.TOKENIZER_DIR,
        output_path=output,
        mode=opts.mode,
        learning_rate=opts.learning_rate if opts.learning_rate is not None else defaults["learning_rate"],
        num_epochs=opts.num_epochs if opts.num_epochs is not None else defaults["num_epochs"],
        dataset_repeat=opts.dataset_repeat,
        num_frames=num_frames,
        height=height,
        width=width,
        max_pixels=opts.max_pixels,
        lora_rank=opts.lora_rank,
        lora_target_modules=opts.lora_target_modules,
        gradient_checkpointing_offload=opts.gradient_checkpointing_offload,
        gradient_accumulation_steps=opts.gradient_accumulation_steps,
        save_steps=opts.save_steps,
        dataset_num_workers=opts.dataset_num_workers,
        layer_offload=strategy == "layer_offload",
    )
    return dataclasses.replace(call, extra=tuple(extra_train_args(opts.train_args, call.args())))


def training_env(diffsynth: Path) -> dict[str, str]:
    env = dict(os.environ)
    # The clone is importable without `pip install -e`; models and tokenizer come from --ckpt_dir only.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(diffsynth), env.get("PYTHONPATH")]))
    env["DIFFSYNTH_SKIP_DOWNLOAD"] = "true"
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    return env


def run(opts: TrainingOptions, launch: LaunchOptions, run_opts: RunOptions, *, ctx: RunContext) -> Path:
    """Launch training; returns the output folder."""
    dataset, ckpt, diffsynth = absolute(opts.dataset), absolute(opts.ckpt_dir), absolute(opts.diffsynth_dir)
    output = absolute(opts.output_path or f"models/train/Wan2.2-Animate-14B_{opts.mode}")
    info = read_dataset(dataset)
    num_processes = num_processes_for(launch)
    strategy = resolve_strategy(launch, num_processes)
    validate_launch(launch, num_processes, strategy)
    for name, value in (
        ("dataset_repeat", opts.dataset_repeat),
        ("gradient_accumulation_steps", opts.gradient_accumulation_steps),
        ("lora_rank", opts.lora_rank),
    ):
        if value < 1:
            raise UserError(f"--{name} {value}: must be at least 1")
    try:
        model_paths = ds.model_paths(ckpt)
    except UserError as exc:
        if not ctx.dry_run:
            raise
        ctx.say(f"warning: {exc}")
        model_paths = [
            [str(ckpt / ds.DIT_GLOB)],
            str(ckpt / ds.T5_FILE),
            str(ckpt / ds.VAE_FILE),
            str(ckpt / ds.CLIP_FILE),
        ]
    call = build_call(opts, info, dataset, ckpt, output, strategy, model_paths)
    topology = acc.Topology(
        num_processes, launch.num_machines, launch.machine_rank, launch.main_process_ip, launch.main_process_port
    )
    accel = acc.accelerate_config(
        strategy,
        topology,
        gradient_accumulation_steps=opts.gradient_accumulation_steps,
        fsdp_wrap_classes=launch.fsdp_wrap_classes,
        fsdp_offload_params=launch.fsdp_offload_params,
        fsdp_ignored_modules=launch.fsdp_ignored_modules,
    )
    config_file = ctx.run_dir / "accelerate_config.yaml"
    try:
        script = ds.check_diffsynth(diffsynth) if opts.train_script is None else absolute(opts.train_script)
        if not script.is_file():
            raise UserError(f"--train_script {script}: file not found")
        if strategy in ("zero2", "zero3") and not has_module(opts.python, "deepspeed"):
            raise UserError(
                f"--strategy {strategy} needs DeepSpeed in {opts.python}; "
                "run scripts/install_training.sh --deepspeed, or use --strategy fsdp"
            )
    except UserError as exc:
        if not ctx.dry_run:
            raise
        ctx.say(f"warning: {exc}")
        script = diffsynth / ds.TRAIN_SCRIPT if opts.train_script is None else absolute(opts.train_script)
    argv = acc.launch_argv(config_file, script, call.args(), python=opts.python)
    writes = launch.machine_rank == 0  # only the main process saves checkpoints (diffsynth/diffusion/logger.py)
    if ctx.dry_run:
        print(
            f"[dry-run] accelerate config ({strategy}, {config_file}):\n{acc.to_yaml(accel)}",
            file=ctx.echo or sys.stdout,
        )
        ctx.step(
            f"training ({opts.mode}, {strategy}, {num_processes} process(es), {info.rows} clips)", argv, stage=STAGE
        )
        return output
    if writes and ds.checkpoints(output) and not run_opts.overwrite:
        raise UserError(f"{output} already holds checkpoints; choose another --output_path or pass --overwrite")

    upstream = {
        "DiffSynth-Studio": {"path": str(diffsynth), "commit": upstream_commit(diffsynth)},
        "checkpoint": str(ckpt),
    }
    options = {**as_dict(opts), **as_dict(launch), "strategy": strategy, "num_processes": num_processes}
    ctx.begin_stage(
        STAGE,
        options=options,
        inputs={"dataset": str(dataset), "rows": info.rows},
        upstream=upstream,
        fp=fingerprint([options, upstream]),
    )
    try:
        with atomic_file(config_file) as tmp:
            tmp.write_text(acc.to_yaml(accel))
        ctx.say(
            f"training: {opts.mode} on {info.rows} clips, {strategy}, {num_processes} process(es) on "
            f"{launch.num_machines} machine(s); accelerate config {config_file}"
        )
        ctx.step(
            "training (DiffSynth-Studio train.py via accelerate)",
            argv,
            stage=STAGE,
            env=training_env(diffsynth),
            cwd=ctx.scratch(STAGE),
        )
        saved = ds.checkpoints(output) if writes else []
        if writes and not saved:
            raise StageFailed(f"train.py exited 0 but wrote no checkpoint into {output}; see {ctx.log_path(STAGE)}")
        empty = [p.name for p in saved if ds.tensor_count(p) == 0]
        if empty:
            raise StageFailed(
                f"train.py saved checkpoints without tensors ({', '.join(empty)}): the trained "
                "parameters were not found under their names; see " + str(ctx.log_path(STAGE))
            )
        if writes:
            write_record(output, options=options, command=argv, accelerate=accel, checkpoints=saved)
    except BaseException as exc:
        ctx.abort_stage(STAGE, exc)
        raise
    ctx.end_stage(STAGE, status="done", outputs=saved)
    ctx.say(f"training done: {len(saved)} checkpoint(s) in {output}" if writes else "training done (rank > 0)")
    return output


def write_record(
    output: Path, *, options: dict[str, Any], command: list[str], accelerate: dict[str, Any], checkpoints: list[Path]
) -> None:
    record = {
        "options": options,
        "command": format_argv(command),
        "accelerate_config": accelerate,
        "checkpoints": {p.name: describe_path(p)["sha256"] for p in checkpoints},
        "load_with": "pipe.load_lora(pipe.dit, <checkpoint>)"
        if options["mode"] == "lora"
        else "load into pipe.animate_adapter (keys have the pipe.animate_adapter. prefix removed)",
    }
    with atomic_file(output / RECORD) as tmp:
        tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False))


def main(argv: list[str] | None = None) -> int:
    return stage_main(
        description="Train Wan2.2-Animate-14B (LoRA or the animate adapter) with DiffSynth-Studio "
        "through accelerate: FSDP2, DeepSpeed ZeRO-2/3, DDP or one-GPU layer offload.",
        option_classes=[TrainingOptions, LaunchOptions, RunOptions],
        run=run,
        argv=argv,
        stage=STAGE,
    )


if __name__ == "__main__":
    sys.exit(main())
