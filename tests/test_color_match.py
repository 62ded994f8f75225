"""Colour match across clips and the drift metric, on the CPU.

- each method removes a known per-clip colour shift from a synthetic video (ΔE at the joins and against the first
  clip, before/after), and the default removes at least 80% (5×) of the join ΔE of a 3-clip video;
- inside upstream's own clip loop (the real `WanAnimate.generate` of the Wan2.2 clone, run on the CPU with a tiny
  stand-in VAE and DiT): the clips start where `clip_starts` says, the hook corrects each clip before its last
  frame becomes the next clip's temporal guide, and in replace mode only the person region changes;
- (the statements of upstream's loop the hook relies on are patch sites: tests/test_patch_sites.py refuses a clone
  without them);
- post hoc on a real video file (`run_postprocess.py --color_match`), and the metric in the generation manifest.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import json
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, locations, run_cli

from replace_actor_video.media.frames import read_frames, write_video
from replace_actor_video.upstream.wan.generate import COLOR_MATCH_DEFAULT
from replace_actor_video.upstream.wan.runtime import clip_color
from replace_actor_video.upstream.wan.runtime import color_match as cm

WAN22 = Path(os.environ.get("WAN22_DIR", REPO / "Wan2.2"))
needs_wan22 = pytest.mark.skipif(
    not (WAN22 / "wan" / "animate.py").is_file(), reason=f"needs the Wan2.2 clone ({WAN22}; install.sh clones it)"
)


# ---- synthetic videos with a known per-clip colour shift ------------------------------------------------------------


def content(t: int, height: int = 72, width: int = 128) -> np.ndarray:
    """A colourful pattern moving over time whose colour statistics do not change (whole periods in x and y), as a
    Wan-Animate clip of one subject on one background: what moves is content, not colour."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    px, py = 2 * np.pi * x / width, 2 * np.pi * y / height
    return np.stack(
        [
            0.5 + 0.3 * np.sin(2 * px + 0.15 * t),
            0.5 + 0.3 * np.sin(py - 0.1 * t + 1),
            0.45 + 0.25 * np.cos(px + 2 * py + 0.07 * t),
        ],
        axis=-1,
    )


def shifted(rgb: np.ndarray, k: int) -> np.ndarray:
    """Clip k's drift: warmer, darker in blue, a little brighter, growing with k (what users report)."""
    gain, offset = np.array([1 + 0.08 * k, 1 - 0.05 * k, 1 - 0.1 * k]), np.array([0.03, 0.01, -0.02]) * k
    return np.clip(rgb * gain + offset, 0, 1)


def synthetic_video(clips: int, clip_len: int = 21, refert_num: int = 1) -> tuple[list[np.ndarray], list[int]]:
    frames = clip_len + (clips - 1) * (clip_len - refert_num)
    starts = cm.clip_starts(frames, clip_len, refert_num)
    assert len(starts) == clips
    clip_of = np.searchsorted(starts, np.arange(frames), side="right") - 1
    return [np.round(shifted(content(i), int(clip_of[i])) * 255).astype(np.uint8) for i in range(frames)], starts


def drift(frames, starts) -> dict:
    return cm.drift_report(np.array([cm.frame_lab_mean(f) for f in frames]), starts)


@pytest.mark.parametrize("anchor", cm.ANCHORS)
@pytest.mark.parametrize("method", [m for m in cm.METHODS if m != "off"])
def test_each_method_removes_a_per_clip_shift(method, anchor):
    frames, starts = synthetic_video(clips=3)
    before = drift(frames, starts)
    matched = list(cm.match_video(frames, starts, method, 1.0, anchor))
    after = drift(matched, starts)
    assert before["join_delta_e_mean"] > 10 and before["vs_first_clip_delta_e_max"] > 20  # the shift is visible
    assert after["join_delta_e_mean"] < before["join_delta_e_mean"] / 3, (method, before, after)
    assert after["vs_first_clip_delta_e_max"] < before["vs_first_clip_delta_e_max"] / 3
    assert after["within_clip_delta_e_median"] < 0.5  # motion inside a clip is left as it was
    # contrast and saturation too, not only the mean: each channel's spread in the last clip is the first clip's

    def spread(clip):
        return np.std(np.stack(clip).reshape(-1, 3) / 255, axis=0)

    first, last = spread(matched[: starts[1]]), spread(matched[starts[-1] :])
    assert np.abs(last / first - 1).max() < 0.1, (first, last, spread(frames[starts[-1] :]))  # unmatched: 0.2


def test_default_method_reduces_join_delta_e_five_times():
    frames, starts = synthetic_video(clips=3)
    before, after = drift(frames, starts), drift(list(cm.match_video(frames, starts, COLOR_MATCH_DEFAULT, 1.0)), starts)
    assert before["clips"] == 3 and len(before["join_delta_e"]) == 2
    assert after["join_delta_e_mean"] * 5 <= before["join_delta_e_mean"], (before, after)


def test_join_anchor_keeps_a_real_colour_change():
    """No drift, but the content's colour slowly changes (the person walks into warmer light): matching across the
    joins leaves it; matching to the first clip pulls every clip back and makes jumps at the joins."""
    frames = 61
    starts = cm.clip_starts(frames, 21, 1)
    video = [
        np.round(np.clip(content(t) + 0.0015 * t * np.array([1.0, -0.5, -0.8]), 0, 1) * 255).astype(np.uint8)
        for t in range(frames)
    ]
    before = drift(video, starts)
    join = drift(list(cm.match_video(video, starts, COLOR_MATCH_DEFAULT, 1.0, "join")), starts)
    first = drift(list(cm.match_video(video, starts, COLOR_MATCH_DEFAULT, 1.0, "first")), starts)
    assert before["join_delta_e_mean"] < 1 and before["vs_first_clip_delta_e_max"] > 5  # a real, gradual change
    assert join["join_delta_e_mean"] < 1
    assert join["vs_first_clip_delta_e_max"] > 0.8 * before["vs_first_clip_delta_e_max"]
    assert first["join_delta_e_mean"] > 3 * before["join_delta_e_mean"]


def test_off_and_strength():
    frames, starts = synthetic_video(clips=2)
    assert all(np.array_equal(a, b) for a, b in zip(cm.match_video(frames, starts, "off", 1.0), frames))
    before = drift(frames, starts)["join_delta_e"][0]
    half = drift(list(cm.match_video(frames, starts, "mkl", 0.5)), starts)["join_delta_e"][0]
    assert before * 0.4 < half < before * 0.6  # half way


def test_clip_starts_and_metric_definitions():
    assert cm.clip_starts(77, 77, 1) == [0]
    assert cm.clip_starts(78, 77, 1) == [0, 77]
    assert cm.clip_starts(230, 77, 1) == [0, 77, 153, 229]
    assert cm.clip_starts(200, 77, 5) == [0, 77, 149]
    labs = np.array([[50, 0, 0]] * 5 + [[50, 3, 4]] * 5, dtype=float)
    report = cm.drift_report(labs, [0, 5])
    assert report["join_delta_e"] == [5.0] and report["vs_first_clip_delta_e"] == [0.0, 5.0]
    assert report["within_clip_delta_e_median"] == 0.0
    assert cm.delta_e(cm.srgb_to_lab([1, 1, 1]), [100, 0, 0]) < 0.01  # white is L*=100
    assert cm.delta_e(cm.srgb_to_lab([1, 0, 0]), [53.24, 80.09, 67.20]) < 0.1  # sRGB red, textbook values


def test_feather_keeps_inside_and_outside():
    mask = np.zeros((40, 40))
    mask[10:30, 10:30] = 1
    weight = cm.feather(mask, 2)
    assert weight.shape == mask.shape and weight[20, 20] == 1 and weight[0, 0] == 0
    assert 0 < weight[10, 20] < 1  # the border fades


# ---- upstream's clip loop on the CPU -------------------------------------------------------------------------------


@contextlib.contextmanager
def upstream_wan_animate():
    """wan.animate from the clone, importable on the CPU: decord and torchvision (import-time only: videos and
    CLIP transforms are never used here) and peft (after diffusers decided it is absent) are empty modules, and
    torch.cuda.current_device (a default argument in wan/modules/t5.py) answers 0 while the module loads."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    saved = {
        name: module
        for name, module in sys.modules.items()
        if name.split(".")[0] in ("wan", "decord", "peft", "torchvision")
    }

    def stub(name, **attrs):
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)
        module.__dict__.update(attrs)
        sys.modules[name] = module
        return module

    for name in saved:
        del sys.modules[name]
    current_device = torch.cuda.current_device
    try:
        stub("torchvision", transforms=stub("torchvision.transforms"))
        stub("decord", VideoReader=None)
        for name, sub in (
            ("wan", "wan"),
            ("wan.modules", "wan/modules"),
            ("wan.utils", "wan/utils"),
            ("wan.distributed", "wan/distributed"),
        ):
            package = types.ModuleType(name)
            package.__path__ = [str(WAN22 / sub)]
            sys.modules[name] = package
        import wan.modules.animate.model_animate

        stub("peft", set_peft_model_state_dict=None, LoraConfig=None)
        torch.cuda.current_device = lambda: 0
        import wan.animate

        torch.cuda.current_device = current_device
        yield wan.animate
    finally:
        torch.cuda.current_device = current_device
        for name in [n for n in sys.modules if n.split(".")[0] in ("wan", "decord", "peft", "torchvision")]:
            del sys.modules[name]
        sys.modules.update(saved)


class TinyModels:
    """Stand-ins for what upstream's loop calls on its models: T5, CLIP, a DiT predicting zero and a VAE whose
    decode renders clip k as `content` (continuing over the video's frame numbers) with clip k's colour shift, in
    the person square only in replace mode. The VAE records what it is asked to encode: the temporal guide."""

    def __init__(self, torch, size, clip_len, refert_num, replace):
        self.torch, self.size, self.clip_len, self.refert_num, self.replace = torch, size, clip_len, refert_num, replace
        self.decoded = 0
        self.encoded = []

    def text_encoder(self, texts, device):
        return [self.torch.zeros(4, 4096)]

    def encode(self, videos):
        self.encoded.append([v.detach().float().clone() for v in videos])
        return [self.torch.zeros(16, 1 + (v.shape[1] - 1) // 4, v.shape[2] // 8, v.shape[3] // 8) for v in videos]

    def person(self):
        mask = np.zeros((self.size, self.size))
        mask[self.size // 4 : 3 * self.size // 4, self.size // 4 : 3 * self.size // 4] = 1
        return mask

    def clean(self, t):
        if not self.replace:
            return content(t, self.size, self.size)
        half = self.size // 2  # the person square holds whole periods: its colour statistics stay put
        return np.tile(content(t, half, half), (2, 2, 1))

    def decode(self, zs):
        k, self.decoded = self.decoded, self.decoded + 1
        frames = 1 + (zs[0].shape[1] - 1) * 4
        first = k * (self.clip_len - self.refert_num)
        video = []
        for j in range(frames):
            clean = self.clean(first + j)
            drifted = shifted(clean, k)
            if self.replace:
                drifted = np.where(self.person()[..., None] > 0.5, drifted, clean)
            video.append(drifted)
        out = self.torch.from_numpy(np.stack(video) * 2 - 1).float().permute(3, 0, 1, 2)
        return [out.clamp_(-1, 1)]


def run_upstream_generate(
    wan_animate, *, frames, clip_len, refert_num, replace=False, method=None, strength=1.0, logs=None
):
    """Upstream's WanAnimate.generate (unchanged) over `frames` driving frames of 32×32, 1 sampling step."""
    import torch

    size = 64 if replace else 32
    cls = wan_animate.WanAnimate
    original = cls.generate
    if method is not None:  # as the launcher installs it (launcher.install_color_match)
        settings = {"method": method, "strength": strength, "anchor": "join"}
        cls.generate = clip_color.wrap_generate(original, cm, settings, (logs if logs is not None else []).append)
    models = TinyModels(torch, size, clip_len, refert_num, replace)
    self = cls.__new__(cls)
    self.device, self.rank, self.sp_size, self.t5_cpu = torch.device("cpu"), 0, 1, True
    self.num_train_timesteps, self.param_dtype = 1000, torch.bfloat16
    self.sample_prompt, self.sample_neg_prompt = "prompt", "negative"
    self.text_encoder = models.text_encoder
    self.clip = types.SimpleNamespace(visual=lambda images: torch.zeros(1, 257, 1280))
    self.vae = types.SimpleNamespace(encode=models.encode, decode=models.decode)
    self.noise_model = lambda x, t, **kwargs: [torch.zeros_like(x[0])]
    pose = np.zeros((frames, size, size, 3), np.uint8)
    self.prepare_source = lambda **kwargs: (
        list(pose),
        list(np.zeros((frames, 8, 8, 3), np.uint8)),
        np.zeros((size, size, 3), np.uint8),
    )
    self.prepare_source_for_replace = lambda *a: (list(pose), np.stack([models.person()] * frames))
    try:
        video = self.generate(
            "unused",
            replace_flag=replace,
            clip_len=clip_len,
            refert_num=refert_num,
            sample_solver="unipc",
            sampling_steps=1,
            seed=0,
        )
    finally:
        cls.generate = original
    assert "decode" not in vars(self.vae) or vars(self.vae)["decode"] == models.decode  # the hook put things back
    frames_out = ((video.permute(1, 2, 3, 0).numpy() + 1) / 2 * 255).round().clip(0, 255).astype(np.uint8)
    return list(frames_out), models


@needs_wan22
@pytest.mark.parametrize("frames,clip_len,refert_num", [(25, 9, 1), (30, 9, 1), (27, 13, 5)])
def test_clips_start_where_upstream_puts_them(frames, clip_len, refert_num):
    with upstream_wan_animate() as wan_animate:
        out, models = run_upstream_generate(wan_animate, frames=frames, clip_len=clip_len, refert_num=refert_num)
    starts = cm.clip_starts(len(out), clip_len, refert_num)
    assert len(out) == frames and models.decoded == len(starts)
    # each clip's shift is constant inside the clip: the mean colour jumps exactly at the clip starts
    steps = cm.delta_e(*[np.array([cm.frame_lab_mean(f) for f in out])[s] for s in (slice(1, None), slice(None, -1))])
    jumps = [i + 1 for i, step in enumerate(steps) if step > 3]
    assert jumps == starts[1:]


@needs_wan22
def test_in_loop_match_reduces_join_delta_e_and_corrects_the_guide():
    logs: list[str] = []
    with upstream_wan_animate() as wan_animate:
        plain, _ = run_upstream_generate(wan_animate, frames=25, clip_len=9, refert_num=1)
        matched, models = run_upstream_generate(
            wan_animate, frames=25, clip_len=9, refert_num=1, method=COLOR_MATCH_DEFAULT, logs=logs
        )
    starts = cm.clip_starts(25, 9, 1)
    before, after = drift(plain, starts), drift(matched, starts)
    assert before["clips"] == 3
    assert after["join_delta_e_mean"] * 5 <= before["join_delta_e_mean"], (before, after)
    assert np.array_equal(plain[0], matched[0])  # the anchor clip is left as generated
    # clips 2 and 3 were guided by the corrected last frame of the clip before (upstream stores it in bf16)
    guides = [
        call[0][:, 0]
        for call in models.encoded  # y_reft of animate mode: the guide, then zeros
        if call[0].shape[1] == 9 and call[0][:, 1:].abs().max() == 0 and call[0][:, 0].abs().max() > 0
    ]
    assert len(guides) == 2
    for guide, start in zip(guides, starts[1:]):
        expect = matched[start - 1].astype(np.float32) / 255 * 2 - 1
        assert np.abs(guide.permute(1, 2, 0).numpy() - expect).max() < 0.02
    assert any("each clip matched to the guide frames" in line for line in logs)
    assert sum("ΔE to its reference" in line for line in logs) == 2


@needs_wan22
def test_replace_mode_changes_only_the_person():
    with upstream_wan_animate() as wan_animate:
        plain, models = run_upstream_generate(wan_animate, frames=25, clip_len=9, refert_num=1, replace=True)
        matched, _ = run_upstream_generate(wan_animate, frames=25, clip_len=9, refert_num=1, replace=True, method="mkl")
    person = models.person()
    far = np.ones_like(person, dtype=bool)
    far[10:54, 10:54] = False  # beyond the feathered border of the person square [16, 48)
    for a, b in zip(plain, matched):
        assert np.array_equal(a[far], b[far])
    starts = cm.clip_starts(25, 9, 1)

    def region(frames):
        return cm.drift_report(np.array([cm.frame_lab_mean(f, person) for f in frames]), starts)

    assert region(matched)["join_delta_e_mean"] * 5 <= region(plain)["join_delta_e_mean"]


# ---- post hoc and in the stages ------------------------------------------------------------------------------------


def test_postprocess_color_match_on_a_video_file(tmp_path):
    frames, starts = synthetic_video(clips=3, clip_len=21)
    source = tmp_path / "drifting.mp4"
    write_video(source, frames, 16, crf=8)
    out = tmp_path / "matched.mp4"
    res = run_cli(
        "run_postprocess.py",
        "--input",
        source,
        "--output",
        out,
        "--color_match",
        "mkl",
        "--target_fps",
        "0",
        "--frame_num",
        "21",
        "--runs_dir",
        tmp_path / "runs",
        cwd=tmp_path,
    )
    assert res.returncode == 0, res.stderr
    before, after = drift(read_frames(source), starts), drift(read_frames(out), starts)
    assert after["join_delta_e_mean"] * 5 <= before["join_delta_e_mean"]
    manifest = json.loads(next((tmp_path / "runs").glob("*/manifest.json")).read_text())
    record = manifest["stages"]["postprocess"]["color_drift"]
    assert record["before"]["whole_frame"]["join_delta_e_mean"] > record["after"]["whole_frame"]["join_delta_e_mean"]
    assert "colour drift over 3 clips" in res.stdout


def test_generation_records_the_drift_metric(media, fake_wan22, fake_ckpt, tmp_path):
    pre = run_cli(
        "run_preprocessing.py",
        "--video_path",
        media["dance"],
        "--refer_path",
        media["ref"],
        "--save_path",
        tmp_path / "pp",
        *locations(fake_wan22, fake_ckpt, tmp_path),
        cwd=tmp_path,
    )
    assert pre.returncode == 0, pre.stderr
    gen = run_cli(
        "run_generation.py",
        "--src_root_path",
        tmp_path / "pp",
        "--save_file",
        tmp_path / "out.mp4",
        "--frame_num",
        "21",
        *locations(fake_wan22, fake_ckpt, tmp_path),
        cwd=tmp_path,
    )
    assert gen.returncode == 0, gen.stderr
    manifest = json.loads(next((tmp_path / "runs").glob("*generate/manifest.json")).read_text())
    record = manifest["stages"]["generate"]
    drift_record = record["color_drift"]
    assert drift_record["color_match"] == {"method": COLOR_MATCH_DEFAULT, "strength": 1.0, "anchor": "join"}
    assert drift_record["whole_frame"]["clip_starts"] == cm.clip_starts(48, 21, 1)  # 2 s at 24 fps
    log = next((tmp_path / "runs").glob("*generate/logs/generate.log")).read_text()
    assert "colour drift over 3 clips" in log and "colour match: mkl, strength 1, frame" in log
    assert "--color_match" in " ".join(record["commands"][0]["argv"])
