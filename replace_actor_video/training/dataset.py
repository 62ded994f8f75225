"""Build a DiffSynth-Studio training dataset for Wan2.2-Animate-14B from a folder or CSV of videos.

Per video, one Ray task (cluster/engine.py: a local Ray instance, or a cluster with --address) on a GPU
Ray reserves for it: the official preprocessing (our stage CLI run_preprocessing.py as a subprocess), then
the target video resampled exactly like the preprocessing sampled it, then every stream cut into clips of
--clip_frames frames. At the end, metadata.csv lists one row per clip with the columns DiffSynth's train.py reads
(see upstream/diffsynth/train.py), paths relative to the
dataset folder. Finished videos are skipped on a rerun (items/<id>.json); a failing video is logged and
skipped, and the summary names it.

Layout of --output:
    metadata.csv             what train.py reads (--dataset_metadata_path)
    dataset.json             mode, columns, train.py keys, clip and video summary (run_training.py reads it)
    clips/<id>/<k>/          video.mp4 pose.mp4 face.mp4 [inpaint.mp4 mask.mp4]
    preprocess/<id>/         the official preprocessing results of one video
    references/<id>.png      the frame taken as reference where none was given
    items/<id>.json          per-video state: done or failed, with its clips or its error
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from ..cluster import engine
from ..cluster.board import Board
from ..core.atomic import atomic_dir, atomic_file
from ..core.cli import report_errors
from ..core.config import upstream_commit
from ..core.errors import StageFailed, UserError
from ..core.options import add_to_parser, as_dict, build, option, to_argv
from ..core.paths import absolute
from ..core.rundir import RunContext, fingerprint
from ..core.stage_cli import RunOptions
from ..mask.options import MaskOptions
from ..media.probe import check_image, probe_video
from ..upstream.diffsynth import train as ds
from ..upstream.wan import preprocess as wan_preprocess
from ..upstream.wan.preprocess import PreprocessOptions
from . import clips
from .inputs import VideoItem, read_inputs

STAGE = "dataset"
REPO = Path(__file__).resolve().parents[2]
PREPROCESS_CLI = REPO / "run_preprocessing.py"
# Preprocessing options the dataset sets itself: the paths per video, and no retargeting, because the
# target frames are the driving video itself and a pose retargeted to another body would not match them.
PREPROCESS_SET_HERE = ("video_path", "refer_path", "save_path", "retarget", "use_flux")
MASK_SET_HERE = ("points",)  # replace mode: SAM2 clicks come from each video's own pose ('auto')
CLIP_FILES = {
    ds.VIDEO: "video.mp4",
    ds.POSE: "pose.mp4",
    ds.FACE: "face.mp4",
    ds.INPAINT: "inpaint.mp4",
    ds.MASK: "mask.mp4",
}
UPSTREAM_FILES = {ds.POSE: "src_pose.mp4", ds.FACE: "src_face.mp4", ds.INPAINT: "src_bg.mp4", ds.MASK: "src_mask.mp4"}


@dataclass(kw_only=True)
class DatasetOptions:
    """Training dataset (DiffSynth-Studio layout)"""

    input: str = option(
        help="a folder of videos (optional <name>.txt prompt and <name>.png/.jpg reference "
        "beside each) or a CSV with columns video[,prompt][,reference]",
        widget="file",
        group="inputs",
    )
    output: str = option(
        "datasets/animate", help="the dataset folder (metadata.csv, clips/, preprocess/)", widget="dir", group="outputs"
    )
    clip_frames: int = option(
        81,
        help="frames per training clip, 4n+1; DiffSynth reads only the first "
        "--num_frames of each file, so longer videos are cut into clips",
        group="dataset",
    )
    max_clips: int = option(0, help="at most this many clips per video (0 = all)", group="dataset")
    reference_frame: int = option(
        0,
        help="where a video has no reference image: the source frame to take as reference (0 = first)",
        group="dataset",
    )
    default_prompt: str = option(
        ds.DEFAULT_PROMPT,
        help="prompt for videos without one (an empty prompt breaks DiffSynth's loader)",
        widget="textarea",
        group="dataset",
    )
    gpus_per_video: float = option(
        1,
        help="GPUs Ray reserves for each video's preprocessing (one task per video, "
        "placed on free GPUs across the cluster); 0 = none, e.g. on a machine without "
        "GPUs",
        group="performance",
    )


def validate(opts: DatasetOptions) -> None:
    if opts.clip_frames < 5 or opts.clip_frames % 4 != 1:
        raise UserError(f"--clip_frames {opts.clip_frames}: use 4n+1 frames (e.g. 81, 49, 33)")
    if opts.max_clips < 0 or opts.reference_frame < 0 or opts.gpus_per_video < 0:
        raise UserError("--max_clips, --reference_frame and --gpus_per_video cannot be negative")
    if not opts.default_prompt.strip():
        raise UserError("--default_prompt is empty; DiffSynth reads an empty prompt as NaN and fails")


@dataclass(frozen=True)
class Layout:
    root: Path

    def preprocess(self, item: VideoItem) -> Path:
        return self.root / "preprocess" / item.id

    def clips(self, item: VideoItem) -> Path:
        return self.root / "clips" / item.id

    def reference(self, item: VideoItem) -> Path:
        return self.root / "references" / f"{item.id}.png"

    def record(self, item: VideoItem) -> Path:
        return self.root / "items" / f"{item.id}.json"

    def read_record(self, item: VideoItem) -> dict[str, Any] | None:
        path = self.record(item)
        return json.loads(path.read_text()) if path.is_file() else None

    def write_record(self, item: VideoItem, record: dict[str, Any]) -> None:
        with atomic_file(self.record(item)) as tmp:
            tmp.write_text(json.dumps(record, indent=2, ensure_ascii=False))


@dataclass
class Builder:
    """What every video of one dataset build shares."""

    opts: DatasetOptions
    template: PreprocessOptions  # resolved preprocessing options; the paths are set per video
    mask: MaskOptions
    layout: Layout
    run_dir: Path

    @property
    def replace(self) -> bool:
        return self.template.replace

    def keys(self) -> tuple[str, ...]:
        return ds.file_keys(self.replace)

    def preprocess_options(self, item: VideoItem, reference: Path) -> PreprocessOptions:
        return dataclasses.replace(
            self.template,
            video_path=str(item.video),
            refer_path=str(reference),
            save_path=str(self.layout.preprocess(item)),
        )

    def preprocess_argv(self, item: VideoItem, reference: Path) -> list[str]:
        argv = [sys.executable, str(PREPROCESS_CLI), *to_argv(self.preprocess_options(item, reference))]
        return argv + (to_argv(self.mask) if self.replace else [])

    def media_fingerprint(self, item: VideoItem) -> str:
        """What the clips of `item` depend on (the prompt is not: it only goes into metadata.csv)."""

        def stat(path: Path | None) -> Any:
            if path is None:
                return {"frame": self.opts.reference_frame}
            try:
                st = path.stat()
            except OSError:
                return [str(path), "missing"]
            return [str(path), st.st_size, st.st_mtime_ns]

        pre = {k: v for k, v in as_dict(self.template).items() if k not in PREPROCESS_SET_HERE}
        mask = as_dict(self.mask) if self.replace else None
        return fingerprint(
            [
                stat(item.video),
                stat(item.reference),
                pre,
                mask,
                upstream_commit(self.template.wan22_dir),
                self.opts.clip_frames,
                self.opts.max_clips,
            ]
        )

    def is_done(self, item: VideoItem, fp: str) -> bool:
        record = self.layout.read_record(item)
        if not record or record.get("status") != "done" or record.get("fingerprint") != fp:
            return False
        return all((self.layout.root / path).is_file() for clip in record["clips"] for path in clip.values())

    # -- one video -------------------------------------------------------------------------------
    def build_video(self, item: VideoItem) -> dict[str, Any]:
        """Preprocess `item` and cut its clips; returns its 'done' record. Raises UserError/StageFailed.
        Runs in a Ray task: CUDA_VISIBLE_DEVICES is already the GPU(s) Ray reserved, and the children inherit it."""
        fp = self.media_fingerprint(item)
        record = self.layout.read_record(item) or {}
        ctx = RunContext.open(self.run_dir / "videos" / item.id, echo=None, cancel=threading.Event())
        gpu = os.environ.get("CUDA_VISIBLE_DEVICES")
        ctx.begin_stage(STAGE, options={"gpu": gpu}, inputs={"video": str(item.video)}, upstream={}, fp=fp)
        try:
            reference = item.reference or self.extract_reference(item, ctx)
            pre_dir = self.layout.preprocess(item)
            if not (record.get("preprocessed") == fp and wan_preprocess.read_record(pre_dir)):
                argv = self.preprocess_argv(item, reference) + [
                    "--overwrite",
                    "--runs_dir",
                    str(ctx.run_dir / "preprocess-runs"),
                ]
                ctx.step("preprocess (run_preprocessing.py)", argv, stage=STAGE)
                self.layout.write_record(item, {"status": "preprocessed", "preprocessed": fp})
            done = self.cut_clips(item, pre_dir, ctx)
        except BaseException as exc:
            ctx.abort_stage(STAGE, exc)
            raise
        done.update(
            {
                "fingerprint": fp,
                "preprocessed": fp,
                "video": str(item.video),
                "reference": str(reference),
                "reference_taken_from_frame": None if item.reference else self.opts.reference_frame,
            }
        )
        self.layout.write_record(item, done)
        ctx.end_stage(STAGE, status="done", outputs=[self.layout.clips(item)])
        return done

    def extract_reference(self, item: VideoItem, ctx: RunContext) -> Path:
        out = self.layout.reference(item)
        if out.is_file():
            return out
        probe_video(item.video)  # a clear one-line error for a missing or unreadable video
        with atomic_file(out) as tmp:
            ctx.step(
                f"reference: frame {self.opts.reference_frame}",
                clips.reference_frame_argv(item.video, self.opts.reference_frame, tmp),
                stage=STAGE,
                expected_outputs=[tmp],
            )
        return out

    def cut_clips(self, item: VideoItem, pre_dir: Path, ctx: RunContext) -> dict[str, Any]:
        info = wan_preprocess.read_record(pre_dir)
        pose = probe_video(pre_dir / UPSTREAM_FILES[ds.POSE], count_frames=True)
        fps = Fraction(info["fps"])
        ranges = clips.clip_ranges(pose.frames, self.opts.clip_frames, self.opts.max_clips)
        if not ranges:
            raise StageFailed(f"{item.video}: preprocessing gave {pose.frames} frames; a clip needs at least 5")
        final = self.layout.clips(item)
        with atomic_dir(final) as tmp:
            target = tmp / "sampled_source.mp4"
            resample = [
                sys.executable,
                "-m",
                "replace_actor_video.training.resample",
                "--video",
                str(item.video),
                "--out",
                str(target),
                "--width",
                str(pose.width),
                "--height",
                str(pose.height),
                "--fps",
                str(self.template.fps),
            ]
            ctx.step(
                "target video: the frames preprocessing sampled",
                resample,
                stage=STAGE,
                expected_outputs=[target],
                env={
                    **os.environ,
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                },
            )
            sources = {ds.VIDEO: target, **{key: pre_dir / UPSTREAM_FILES[key] for key in self.keys()[1:]}}
            for k in range(len(ranges)):
                (tmp / f"{k:03d}").mkdir()
            for key, source in sources.items():
                outputs = [tmp / f"{k:03d}" / CLIP_FILES[key] for k in range(len(ranges))]
                ctx.step(
                    f"clips: {key}",
                    clips.cut_argv(source, outputs, ranges, fps=fps),
                    stage=STAGE,
                    expected_outputs=outputs,
                )
            target.unlink()
            self.check_clips(tmp, ranges)
        rows = [{key: f"clips/{item.id}/{k:03d}/{CLIP_FILES[key]}" for key in self.keys()} for k in range(len(ranges))]
        return {
            "status": "done",
            "clips": rows,
            "frames": pose.frames,
            "fps": str(fps),
            "size": [pose.width, pose.height],
        }

    def check_clips(self, folder: Path, ranges: list[tuple[int, int]]) -> None:
        """Every stream of every clip must have the clip's frame count, or training pairs would drift."""
        for k, (start, end) in enumerate(ranges):
            counts = {
                key: probe_video(folder / f"{k:03d}" / CLIP_FILES[key], count_frames=True).frames for key in self.keys()
            }
            if set(counts.values()) != {end - start}:
                raise StageFailed(f"clip {k:03d}: expected {end - start} frames in every stream, got {counts}")


# -- the whole dataset ------------------------------------------------------------------------------
def run(
    opts: DatasetOptions,
    pre_values: dict[str, Any],
    mask: MaskOptions,
    run_opts: RunOptions,
    *,
    ctx: RunContext,
    eng: engine.EngineOptions | None = None,
) -> Path:
    """Build (or bring up to date) the dataset in `opts.output`; returns the metadata.csv path.
    `pre_values` are the preprocessing options as parsed (PreprocessOptions less PREPROCESS_SET_HERE)."""
    validate(opts)
    eng = eng or engine.EngineOptions()
    engine.validate(eng)
    template = build(
        PreprocessOptions, {**pre_values, "video_path": "-", "refer_path": "-", "retarget": False, "use_flux": False}
    )
    template = dataclasses.replace(
        template, wan22_dir=str(absolute(template.wan22_dir)), ckpt_dir=str(absolute(template.ckpt_dir))
    )
    wan_preprocess.validate(template)
    items = read_inputs(absolute(opts.input))
    layout = Layout(absolute(opts.output))
    for item in items:
        if item.reference is not None:
            check_image(item.reference)
        if layout.root == item.video.parent or layout.root in item.video.parents:
            raise UserError(f"{layout.root}: the dataset folder holds the input {item.video}; choose another --output")
    builder = Builder(opts, template, mask, layout, ctx.run_dir)
    if ctx.dry_run:
        return describe_plan(builder, items, ctx)

    # Checked once here so a missing clone or model fails the run, not every video one by one.
    wan_preprocess.check_wan22(Path(template.wan22_dir))
    wan_preprocess.check_process_checkpoint(Path(template.ckpt_dir), replace=template.replace, use_flux=False)
    options = {**as_dict(opts), "preprocess": as_dict(template), "mask": as_dict(mask) if template.replace else None}
    ctx.begin_stage(
        STAGE,
        options=options,
        inputs={"input": str(absolute(opts.input))},
        upstream={"Wan2.2": {"path": template.wan22_dir, "commit": upstream_commit(template.wan22_dir)}},
        fp=fingerprint(options),
    )
    results: dict[str, dict[str, Any]] = {}
    todo, missing = [], []
    for item in items:
        if not item.video.is_file():
            missing.append(item)
        elif builder.is_done(item, builder.media_fingerprint(item)):
            results[item.id] = {**layout.read_record(item), "skipped": True}
        else:
            todo.append(item)
    ctx.say(
        f"dataset: {len(items)} videos, {len(results)} already done, {len(todo)} to build, one Ray task each"
        + (f" with {opts.gpus_per_video:g} GPU(s)" if opts.gpus_per_video else " on CPUs")
    )
    for item in missing:  # logged and skipped like any failing video; the others go on
        results[item.id] = failed_record(
            builder, item, f"{item.video}: video not found; fix its path in {opts.input} or remove it"
        )
        ctx.say(f"dataset: {item.id} FAILED: {results[item.id]['error']}")
    try:
        results.update(build_all(builder, todo, ctx, eng))
    except BaseException as exc:
        ctx.abort_stage(STAGE, exc)
        raise
    metadata = write_outputs(builder, items, results)
    failed = [r for r in results.values() if r.get("status") == "failed"]
    ctx.end_stage(
        STAGE,
        status="done" if not failed else "failed",
        outputs=[metadata, layout.root / "dataset.json"],
        error=f"{len(failed)} video(s) failed" if failed else None,
    )
    print_summary(ctx, items, results, metadata)
    if failed:
        raise StageFailed(
            f"{len(failed)} of {len(items)} videos failed (listed above and in "
            f"{layout.root / 'dataset.json'}); metadata.csv lists the others; rerun to retry them"
        )
    return metadata


def failed_record(builder: Builder, item: VideoItem, error: str) -> dict[str, Any]:
    """Record a failed video (the rerun retries it) and return the record."""
    log = builder.run_dir / "videos" / item.id / "logs" / f"{STAGE}.log"
    earlier = builder.layout.read_record(item) or {}
    record = {
        "status": "failed",
        "video": str(item.video),
        "error": error,
        "log": str(log) if log.is_file() else None,
        "preprocessed": earlier.get("preprocessed"),
    }
    builder.layout.write_record(item, record)
    return record


def build_one(builder: Builder, item: VideoItem) -> dict[str, Any]:
    """The Ray task of one video: its 'done' record, or a 'failed' one (logged and skipped, never raised:
    one bad video must not stop the others)."""
    if not os.access(item.video, os.R_OK):
        return failed_record(
            builder,
            item,
            f"node {engine.node_name()} cannot read {item.video}: the videos, the "
            "dataset folder and the upstream clones must be on storage every node sees, at the "
            "same path (docs/SCALE.md)",
        )
    try:
        record = builder.build_video(item)
    except (UserError, StageFailed) as exc:
        return failed_record(builder, item, str(exc))
    return {**record, "output": f"{len(record['clips'])} clip(s) in {builder.layout.clips(item)}"}


def build_all(
    builder: Builder, todo: list[VideoItem], ctx: RunContext, eng: engine.EngineOptions
) -> dict[str, dict[str, Any]]:
    """One Ray task per video, placed on free GPUs (Ctrl-C cancels them and ends their process trees)."""
    if not todo:
        return {}
    board = Board([(item.id, item.id) for item in todo], title="dataset", prefix="dataset")
    engine.connect(eng)
    try:
        return engine.run_tasks(
            build_one,
            [engine.Task(item.id, item.id, (builder, item), num_gpus=builder.opts.gpus_per_video) for item in todo],
            opts=eng,
            on_event=board.event,
        )
    finally:
        engine.shutdown()
        board.close(table=False)


def write_outputs(builder: Builder, items: list[VideoItem], results: dict[str, dict]) -> Path:
    """metadata.csv (one row per clip of every finished video, in input order) and dataset.json."""
    keys = builder.keys()
    columns = [ds.VIDEO, ds.PROMPT, *keys[1:]]
    metadata = builder.layout.root / "metadata.csv"
    rows, sizes = [], {}
    for item in items:
        record = results.get(item.id, {})
        if record.get("status") != "done":
            continue
        prompt = item.prompt or builder.opts.default_prompt
        for clip in record["clips"]:
            rows.append({**clip, ds.PROMPT: prompt})
        size = "x".join(map(str, record["size"]))
        sizes[size] = sizes.get(size, 0) + len(record["clips"])
    with atomic_file(metadata) as tmp:
        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)
    summary = {
        "format": "DiffSynth-Studio UnifiedDataset, Wan2.2-Animate-14B",
        "mode": "replace" if builder.replace else "animate",
        "columns": columns,
        "data_file_keys": list(keys),
        "extra_inputs": list(ds.extra_inputs(builder.replace)),
        "clip_frames": builder.opts.clip_frames,
        "fps": builder.template.fps,
        "sizes": sizes,
        "rows": len(rows),
        "videos": {
            item.id: {k: v for k, v in results.get(item.id, {"status": "missing"}).items() if k != "clips"}
            | {"clips": len(results.get(item.id, {}).get("clips", []))}
            for item in items
        },
    }
    with atomic_file(builder.layout.root / "dataset.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2, ensure_ascii=False))
    return metadata


def print_summary(ctx: RunContext, items: list[VideoItem], results: dict[str, dict], metadata: Path) -> None:
    done = [i for i in items if results.get(i.id, {}).get("status") == "done"]
    skipped = [i for i in done if results[i.id].get("skipped")]
    failed = [i for i in items if results.get(i.id, {}).get("status") == "failed"]
    clips_total = sum(len(results[i.id]["clips"]) for i in done)
    ctx.say(
        f"dataset summary: {len(done)} of {len(items)} videos ready ({len(skipped)} were already done), "
        f"{clips_total} clips, {len(failed)} failed; {metadata}"
    )
    for item in failed:
        record = results[item.id]
        log = record.get("log")
        ctx.say(f"  failed: {record['error']}" + (f" (log: {log})" if log and log not in record["error"] else ""))


def describe_plan(builder: Builder, items: list[VideoItem], ctx: RunContext) -> Path:
    gpus = builder.opts.gpus_per_video
    ctx.say(
        f"dataset (dry run): {len(items)} videos into {builder.layout.root}, one Ray task each"
        f"{f' with {gpus:g} GPU(s)' if gpus else ' on CPUs'}; "
        f"metadata.csv columns: {', '.join([ds.VIDEO, ds.PROMPT, *builder.keys()[1:]])}"
    )
    for item in items:
        reference = item.reference or builder.layout.reference(item)
        if item.reference is None:
            ctx.step(
                f"{item.id}: reference = frame {builder.opts.reference_frame}",
                clips.reference_frame_argv(item.video, builder.opts.reference_frame, reference),
                stage=STAGE,
            )
        argv = builder.preprocess_argv(item, reference)
        ctx.step(f"{item.id}: preprocess", argv, stage=STAGE)
    ctx.say(f"then: each video resampled like its pose and cut into {builder.opts.clip_frames}-frame clips")
    return builder.layout.root / "metadata.csv"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Build a DiffSynth-Studio training dataset for Wan2.2-Animate-14B "
        "(official preprocessing per video, clips, metadata.csv)."
    )
    seen: set[str] = set()
    add_to_parser(parser, DatasetOptions, seen=seen)
    pre_names = add_to_parser(parser, PreprocessOptions, skip=PREPROCESS_SET_HERE, seen=seen)
    add_to_parser(parser, MaskOptions, skip=MASK_SET_HERE, seen=seen)
    add_to_parser(parser, engine.EngineOptions, seen=seen)
    add_to_parser(parser, RunOptions, seen=seen)
    values = vars(parser.parse_args(argv))

    def body() -> None:
        opts, mask, run_opts = build(DatasetOptions, values), build(MaskOptions, values), build(RunOptions, values)
        ctx = RunContext.create(run_opts.runs_dir, STAGE, dry_run=run_opts.dry_run, cancel=threading.Event())
        run(
            opts,
            {name: values[name] for name in pre_names},
            mask,
            run_opts,
            ctx=ctx,
            eng=build(engine.EngineOptions, values),
        )

    return report_errors(body)


if __name__ == "__main__":
    sys.exit(main())
