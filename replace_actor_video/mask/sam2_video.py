"""SAM2 video segmentation of one person from click prompts, with the `sam2` PyPI package (1.x).

The chain mirrors ComfyUI's Sam2Segmentation in video mode and upstream's get_mask: the package's
`build_sam2_video_predictor` (same post-processing overrides as Wan2.2's copy), `init_state` on the
frames (resized to 1024^2 by sam2), `add_new_points_or_box(obj_id=1, labels 1/0)`, `propagate_in_video`,
mask = logits > 0.

Long videos run in chunks of `chunk_frames` (sam2 keeps every frame of a session in memory). Chunk k+1
starts on the last frame of chunk k; that shared frame is prompted with chunk k's mask for it (unless
the points file has clicks for it) and its duplicate output is dropped, so tracking carries across
chunks exactly on the frame it was computed for. Clicks on frames inside a chunk are added too. Frames
before a chunk's first prompt are tracked backwards from it.

Frames reach sam2 as a temporary folder of JPEGs (quality 95): the package's public loader takes a
JPEG folder or an mp4 (the latter needs decord), not arrays.
"""

from __future__ import annotations

import pickle
import re
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import UserError
from .points import FramePoints, PointsSpec

OBJ_ID = 1
JPEG_QUALITY = 95

_SIZES = {
    "tiny": "t",
    "t": "t",
    "small": "s",
    "s": "s",
    "base_plus": "b+",
    "b+": "b+",
    "base-plus": "b+",
    "large": "l",
    "l": "l",
}
_CKPT_NAME = re.compile(r"sam2(\.1)?[_-]hiera[_-](tiny|small|base[_-]plus|large|b\+|t|s|l)(?![a-z])", re.IGNORECASE)


def infer_sam2_config(checkpoint: str | Path) -> str:
    """The sam2 config name that matches a checkpoint file name.

    sam2_hiera_large.pt -> configs/sam2/sam2_hiera_l.yaml; sam2.1_hiera_base_plus.pt ->
    configs/sam2.1/sam2.1_hiera_b+.yaml (the names Meta publishes; Wan2.2 ships sam2_hiera_large.pt)."""
    m = _CKPT_NAME.search(Path(checkpoint).name)
    if not m:
        raise UserError(
            f"cannot tell the SAM2 model size from the file name {Path(checkpoint).name!r}; "
            "pass --sam2_config (e.g. configs/sam2.1/sam2.1_hiera_l.yaml)"
        )
    size = _SIZES[m.group(2).lower().replace("-", "_")]
    return f"configs/sam2.1/sam2.1_hiera_{size}.yaml" if m.group(1) else f"configs/sam2/sam2_hiera_{size}.yaml"


def _sam2_package() -> Any:
    try:
        import sam2
        import torch  # noqa: F401
    except ImportError as exc:
        raise UserError(
            f"the contour mask needs the sam2 package ({exc.name} is missing); "
            "install it as requirements-mask-cpu.txt shows"
        ) from None
    return sam2


def check_sam2_config(config: str) -> str:
    """Accept a config name inside the sam2 package (as sam2's hydra sees it); UserError otherwise."""
    pkg = _sam2_package()
    root = Path(pkg.__path__[0])
    name = config.removeprefix("sam2/") if config.startswith("sam2/configs/") else config
    if not (root / name).is_file():
        raise UserError(
            f"SAM2 config {config!r} is not in the sam2 package; use a name such as "
            "configs/sam2.1/sam2.1_hiera_l.yaml or sam2_hiera_l.yaml"
        )
    return name


@dataclass(frozen=True)
class Sam2Settings:
    checkpoint: Path
    config: str | None = None  # None: inferred from the checkpoint file name
    device: str = "cuda"
    # sam2's internal square resolution; None keeps the config's 1024 (what the models were trained
    # at). Smaller runs much faster on a CPU (tests use 128) but gives coarser, less reliable masks.
    image_size: int | None = None


class Sam2VideoSegmenter:
    """A loaded SAM2 video predictor; `segment_chunk` runs one sam2 session over a few frames."""

    def __init__(self, settings: Sam2Settings) -> None:
        _sam2_package()
        import torch
        from sam2.build_sam import build_sam2_video_predictor

        ckpt = Path(settings.checkpoint)
        if not ckpt.is_file():
            raise UserError(
                f"{ckpt}: SAM2 checkpoint not found; pass --sam2_checkpoint "
                "(Wan2.2-Animate-14B/process_checkpoint/sam2/sam2_hiera_large.pt)"
            )
        self.config = check_sam2_config(settings.config or infer_sam2_config(ckpt))
        if settings.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError("SAM2 device is cuda but torch sees no CUDA GPU; pass --device cpu (slow) or fix CUDA")
        try:
            self.predictor = build_sam2_video_predictor(
                self.config,
                str(ckpt),
                device=settings.device,
                hydra_overrides_extra=_size_overrides(settings.image_size),
            )
        except RuntimeError as exc:
            # sam2 raises a bare RuntimeError (and logs the keys) when the weights don't fit the config.
            raise UserError(
                f"{ckpt} does not match SAM2 config {self.config} ({exc or 'state dict mismatch'}); "
                "pass the --sam2_config that matches the checkpoint"
            ) from None
        except (EOFError, IndexError, KeyError, OSError, ValueError, pickle.UnpicklingError) as exc:
            # torch.load on a truncated or foreign file fails with any of these.
            raise UserError(
                f"{ckpt}: not a readable SAM2 checkpoint ({type(exc).__name__}); download it again"
            ) from None
        self.device = settings.device

    def segment_chunk(
        self, frames: np.ndarray, prompts: dict[int, FramePoints], init_mask: np.ndarray | None = None
    ) -> np.ndarray:
        """Masks (T, H, W) bool for frames (T, H, W, 3) RGB uint8.

        prompts: local frame index -> clicks in pixels; init_mask: a mask for local frame 0 (used only
        when frame 0 has no clicks). With neither, every frame comes back empty."""
        import torch

        n = len(frames)
        out = np.zeros(frames.shape[:3], dtype=bool)
        use_mask = init_mask is not None and 0 not in prompts and bool(init_mask.any())
        if not prompts and not use_mask:
            return out
        with tempfile.TemporaryDirectory(prefix="sam2-frames-") as tmp:
            _write_jpegs(frames, Path(tmp))
            with torch.inference_mode(), warnings.catch_warnings():
                # Without the optional CUDA extension sam2 skips hole filling and warns on every frame.
                warnings.filterwarnings("ignore", message=r"(?s).*Skipping the post-processing step")
                state = self.predictor.init_state(tmp, offload_video_to_cpu=True)
                if use_mask:
                    self.predictor.add_new_mask(state, frame_idx=0, obj_id=OBJ_ID, mask=init_mask)
                for idx, fp in sorted(prompts.items()):
                    pts = np.array(fp.positive + fp.negative, dtype=np.float32)
                    labels = np.array([1] * len(fp.positive) + [0] * len(fp.negative), dtype=np.int32)
                    self.predictor.add_new_points_or_box(state, frame_idx=idx, obj_id=OBJ_ID, points=pts, labels=labels)
                first = 0 if use_mask else min(prompts)
                for reverse in (False, True) if first > 0 else (False,):
                    for idx, _, logits in self.predictor.propagate_in_video(
                        state, start_frame_idx=first, reverse=reverse
                    ):
                        out[idx] = (logits[0, 0] > 0).cpu().numpy()
                self.predictor.reset_state(state)
        assert out.shape[0] == n
        return out


def _size_overrides(image_size: int | None) -> list[str]:
    if image_size is None:
        return []
    if image_size < 64 or image_size % 64:
        raise UserError(f"SAM2 image size {image_size} must be a multiple of 64 (the model's default is 1024)")
    return [f"++model.image_size={image_size}"]


def _write_jpegs(frames: np.ndarray, folder: Path) -> None:
    import cv2

    for i, frame in enumerate(frames):
        # sam2 sorts the folder by int(stem): 00000.jpg, 00001.jpg, ...
        ok = cv2.imwrite(
            str(folder / f"{i:05d}.jpg"),
            np.ascontiguousarray(frame[..., ::-1]),
            [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY],
        )
        if not ok:
            raise OSError(f"could not write a frame JPEG into {folder}")


def segment_video(
    segmenter: Sam2VideoSegmenter, frames: Iterable[np.ndarray], points: PointsSpec, chunk_frames: int = 400
) -> Iterator[np.ndarray]:
    """Yield one (H, W) bool mask per input frame, in order, running SAM2 chunk by chunk.

    `points` must be in pixels of the frames (see points.resolve_points). chunk_frames >= 2."""
    if chunk_frames < 2:
        raise UserError(f"chunk_frames is {chunk_frames}; use at least 2 (400 matches upstream)")
    by_frame = {f.frame: f for f in points.frames}
    buf: list[np.ndarray] = []
    start = 0  # global index of buf[0]
    carry: np.ndarray | None = None
    it = iter(frames)
    exhausted = False
    while not exhausted:
        while len(buf) < chunk_frames:
            frame = next(it, None)
            if frame is None:
                exhausted = True
                break
            buf.append(frame)
        if not buf:
            break
        if carry is not None and len(buf) == 1:
            break  # only the shared frame is left: it was already yielded
        chunk = np.stack(buf)
        prompts = {g - start: fp for g, fp in by_frame.items() if start <= g < start + len(buf)}
        masks = segmenter.segment_chunk(chunk, prompts, carry)
        skip = 1 if carry is not None else 0  # the shared first frame was yielded by the previous chunk
        yield from masks[skip:]
        carry = masks[-1]
        start += len(buf) - 1
        buf = buf[-1:]
