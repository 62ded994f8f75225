"""Colour matching of generated clips to an anchor clip, and the colour-drift metric (ΔE in CIELAB).

Wan2.2-Animate makes a long video clip by clip; each clip is guided by the last frame(s) of the previous
one after a VAE decode/encode round trip, so small colour errors compound from clip to clip. Matching each
clip's colour distribution to the first clip's, before its last frames guide the next clip, stops that
(clip_color.py does it inside upstream's loop; the postprocess stage does it after the fact).

One transform per clip, from the statistics of the whole clip (or of a masked region of it), applied to
every frame of the clip: the colour of the clip as a whole moves back to the anchor's, while the changes
from frame to frame inside a clip (motion, lighting the driving video asks for) are kept.

Methods (all on RGB in [0, 1]):
- mkl: the Monge-Kantorovich linear map (Pitié & Kokaram 2007): the affine map of least displacement that
  gives the clip the anchor's mean and 3×3 covariance; corrects brightness, tint and saturation at once.
- mvgd: also matches mean and covariance, through Cholesky factors (T = L_anchor · L_clip⁻¹): a valid
  multivariate-Gaussian transfer, but it rotates colours more than mkl to get there.
- reinhard: per-channel mean and standard deviation in Reinhard's decorrelated lαβ space (log LMS).
- hm: per-channel histogram matching (1,024 bins): also matches the shape of each channel's distribution.
- off: nothing.

numpy and the standard library only: launcher.py loads this file by path in upstream's Python; our package
imports it for the postprocess stage and the drift report (../color_drift.py).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

METHODS = ("off", "mkl", "reinhard", "hm", "mvgd")
ANCHORS = ("join", "first")  # what each clip is matched to: across its join, or the whole first clip
BINS = 1024  # histogram bins per channel for `hm` (decoded video is 8-bit: 4 bins per code value)
MIN_PIXELS = 256  # a clip (or masked region) with fewer pixels than this is left as it is
EPS = 1e-6  # covariance floor: a flat clip must not blow the transform up

# sRGB (D65) → XYZ, and Reinhard et al.'s RGB → LMS and the lαβ decorrelation
_RGB_TO_XYZ = np.array(
    [[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]]
)
_D65_WHITE = np.array([0.95047, 1.0, 1.08883])
_RGB_TO_LMS = np.array([[0.3811, 0.5783, 0.0402], [0.1967, 0.7244, 0.0782], [0.0241, 0.1288, 0.8444]])
_LMS_TO_LAB = np.diag([1 / np.sqrt(3), 1 / np.sqrt(6), 1 / np.sqrt(2)]) @ np.array([[1, 1, 1], [1, 1, -2], [1, -1, 0]])
_LMS_FLOOR = 1 / 255  # log of zero: Reinhard's transfer treats black as the darkest 8-bit value


# ---- colour spaces ----------------------------------------------------------------------------------------------


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """sRGB values in [0, 1], shape (..., 3) → CIELAB (D65), float64."""
    rgb = np.clip(np.asarray(rgb, dtype=np.float64), 0.0, 1.0)
    linear = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = linear @ _RGB_TO_XYZ.T / _D65_WHITE
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def delta_e(lab_a: np.ndarray, lab_b: np.ndarray) -> np.ndarray:
    """CIE76 colour difference ΔE*ab (Euclidean distance in CIELAB); about 2.3 is a just-noticeable difference."""
    return np.linalg.norm(np.asarray(lab_a, dtype=np.float64) - np.asarray(lab_b, dtype=np.float64), axis=-1)


def _lab_reinhard(rgb: np.ndarray) -> np.ndarray:
    lms = np.maximum(np.asarray(rgb, dtype=np.float32) @ _RGB_TO_LMS.T.astype(np.float32), np.float32(_LMS_FLOOR))
    return np.log10(lms) @ _LMS_TO_LAB.T.astype(np.float32)


def _rgb_from_lab_reinhard(lab: np.ndarray) -> np.ndarray:
    lms = np.float32(10) ** (lab @ np.linalg.inv(_LMS_TO_LAB).T.astype(np.float32))
    return lms @ np.linalg.inv(_RGB_TO_LMS).T.astype(np.float32)


# ---- statistics ---------------------------------------------------------------------------------------------------

STATS_OF = {"mkl": "moments", "mvgd": "moments", "reinhard": "lab", "hm": "hist", "off": "moments"}
SAMPLE = 4  # statistics from every 4th pixel: 230,400 of a 720p frame is plenty for a mean, covariance or histogram


class ColorStats:
    """What `method` needs to know about a set of pixels, accumulated frame by frame (a 720p clip is 71 M pixels:
    never held in float64 at once): always the count and mean RGB; the RGB covariance (mkl, mvgd), per-channel
    histograms (hm) or mean and standard deviation in lαβ (reinhard)."""

    def __init__(self, method: str = "mkl") -> None:
        if method not in STATS_OF:
            raise ValueError(f"colour match method {method!r}: choose one of {', '.join(METHODS)}")
        self.kind = STATS_OF[method]
        self.count = 0
        self._sum = np.zeros(3)
        self._outer = np.zeros((3, 3))
        self.hist = np.zeros((3, BINS), dtype=np.int64)
        self._lab_sum = np.zeros(3)
        self._lab_sq = np.zeros(3)

    def add(self, pixels: np.ndarray) -> ColorStats:
        """pixels: (N, 3) RGB in [0, 1]; every SAMPLE-th is used."""
        pixels = np.asarray(pixels, dtype=np.float32).reshape(-1, 3)[::SAMPLE]
        if not len(pixels):
            return self
        self.count += len(pixels)
        centred = pixels - np.float32(0.5)  # keeps float32 sums of squares away from cancellation
        self._sum += centred.sum(axis=0, dtype=np.float64)
        if self.kind == "moments":
            self._outer += (centred.T @ centred).astype(np.float64)
        elif self.kind == "hist":
            codes = np.clip((pixels * BINS).astype(np.int32), 0, BINS - 1) + np.arange(3, dtype=np.int32) * BINS
            self.hist += np.bincount(codes.ravel(), minlength=3 * BINS).reshape(3, BINS)
        else:
            lab = _lab_reinhard(pixels)
            self._lab_sum += lab.sum(axis=0, dtype=np.float64)
            self._lab_sq += (lab * lab).sum(axis=0, dtype=np.float64)
        return self

    @property
    def mean(self) -> np.ndarray:
        return self._sum / max(self.count, 1) + 0.5

    @property
    def cov(self) -> np.ndarray:
        centred_mean = self._sum / max(self.count, 1)
        return self._outer / max(self.count, 1) - np.outer(centred_mean, centred_mean) + EPS * np.eye(3)

    @property
    def lab_mean(self) -> np.ndarray:
        return self._lab_sum / max(self.count, 1)

    @property
    def lab_std(self) -> np.ndarray:
        return np.sqrt(np.maximum(self._lab_sq / max(self.count, 1) - self.lab_mean**2, EPS))


def _sqrtm(matrix: np.ndarray, inverse: bool = False) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    values = np.maximum(values, EPS)
    return (vectors * (values ** (-0.5 if inverse else 0.5))) @ vectors.T


# ---- transforms ---------------------------------------------------------------------------------------------------

Transform = Callable[[np.ndarray], np.ndarray]


def _affine(matrix: np.ndarray, src_mean: np.ndarray, ref_mean: np.ndarray) -> Transform:
    matrix32 = matrix.astype(np.float32)
    offset = (ref_mean - matrix @ src_mean).astype(np.float32)[:, None]
    # (3×3) @ (3×N) is one matrix product; (N×3) @ (3×3) runs ~9× slower in numpy
    return lambda pixels: (matrix32 @ np.ascontiguousarray(pixels.T) + offset).T


def transform(method: str, src: ColorStats, ref: ColorStats) -> Transform:
    """The map that gives pixels distributed like `src` the distribution of `ref` (by `method`)."""
    if method == "mkl":
        root, inv_root = _sqrtm(src.cov), _sqrtm(src.cov, inverse=True)
        return _affine(inv_root @ _sqrtm(root @ ref.cov @ root) @ inv_root, src.mean, ref.mean)
    if method == "mvgd":
        chol_src, chol_ref = np.linalg.cholesky(src.cov), np.linalg.cholesky(ref.cov)
        return _affine(chol_ref @ np.linalg.inv(chol_src), src.mean, ref.mean)
    if method == "reinhard":
        scale = (ref.lab_std / src.lab_std).astype(np.float32)
        shift = (ref.lab_mean - src.lab_mean * ref.lab_std / src.lab_std).astype(np.float32)
        return lambda pixels: _rgb_from_lab_reinhard(_lab_reinhard(pixels) * scale + shift)
    if method == "hm":
        edges = np.linspace(0.0, 1.0, BINS + 1)
        luts = []
        for ch in range(3):
            cdf_src = np.concatenate([[0.0], np.cumsum(src.hist[ch]) / max(src.count, 1)])
            cdf_ref = np.concatenate([[0.0], np.cumsum(ref.hist[ch]) / max(ref.count, 1)])
            luts.append(np.interp(cdf_src, cdf_ref, edges))  # value of ref at the quantile src has at each edge

        fine = np.linspace(0.0, 1.0, 4 * BINS + 1)  # the maps sampled finely: a table lookup per pixel
        tables = np.stack([np.interp(fine, edges, lut) for lut in luts]).astype(np.float32)

        def histogram_map(pixels: np.ndarray) -> np.ndarray:
            codes = np.clip(np.rint(pixels * (4 * BINS)).astype(np.int32), 0, 4 * BINS)
            return np.stack([tables[ch][codes[:, ch]] for ch in range(3)], axis=1)

        return histogram_map
    if method == "off":
        return lambda pixels: pixels
    raise ValueError(f"colour match method {method!r}: choose one of {', '.join(METHODS)}")


def apply(frame: np.ndarray, fn: Transform, strength: float, weight: np.ndarray | None = None) -> np.ndarray:
    """One (H, W, 3) float frame in [0, 1] moved `strength` of the way to fn(frame); with `weight` (H, W) in
    [0, 1], only where the weight is (a feathered mask: the generated person in replace mode)."""
    pixels = np.asarray(frame, dtype=np.float32).reshape(-1, 3)
    moved = fn(pixels)
    if strength != 1.0 or weight is not None:
        step = moved - pixels
        step *= (
            np.float32(strength)
            if weight is None
            else np.float32(strength) * np.asarray(weight, dtype=np.float32).reshape(-1, 1)
        )
        moved = pixels + step
    return np.clip(moved, 0.0, 1.0, out=moved).reshape(frame.shape)


def feather(mask: np.ndarray, radius: int) -> np.ndarray:
    """A binary (H, W) mask softened by two passes of a (2r+1)² box blur (a tent of radius 2r): the colour
    change fades out over the border instead of leaving a seam."""
    weight = (np.asarray(mask) > 0.5).astype(np.float32)
    for _ in range(2):
        for axis in (0, 1):
            padded = np.pad(weight, [(radius + 1, radius) if a == axis else (0, 0) for a in range(2)], mode="edge")
            sums = np.cumsum(padded, axis=axis, dtype=np.float64)
            hi = np.take(sums, range(2 * radius + 1, sums.shape[axis]), axis=axis)
            lo = np.take(sums, range(sums.shape[axis] - 2 * radius - 1), axis=axis)
            weight = ((hi - lo) / (2 * radius + 1)).astype(np.float32)
    return weight


def feather_radius(height: int, width: int) -> int:
    return max(2, round(min(height, width) / 180))  # 4 px at 720p; the tent spans ~16 px


def region_pixels(frame: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
    """The pixels statistics are taken from: the whole frame, or where the mask is set."""
    pixels = np.asarray(frame, dtype=np.float32).reshape(-1, 3)
    return pixels if mask is None else pixels[np.asarray(mask).reshape(-1) > 0.5]


# ---- clips in a finished video ------------------------------------------------------------------------------------


def clip_starts(frames: int, clip_len: int, refert_num: int) -> list[int]:
    """First frame of each clip in a video made by WanAnimate.generate: clip 0 is frames [0, clip_len); every
    later clip is generated over `clip_len` frames whose first `refert_num` repeat the previous clip's last
    ones and are dropped, so clip k (k ≥ 1) adds the frames from clip_len + (k-1)·(clip_len − refert_num)."""
    starts, start = [0], clip_len
    while start < frames:
        starts.append(start)
        start += clip_len - refert_num
    return starts


def split_clips(frames: Iterable[np.ndarray], starts: Sequence[int]) -> Iterator[list[np.ndarray]]:
    """Group a stream of frames into the clips that begin at `starts`."""
    bounds = set(starts[1:])
    clip: list[np.ndarray] = []
    for index, frame in enumerate(frames):
        if index in bounds and clip:
            yield clip
            clip = []
        clip.append(frame)
    if clip:
        yield clip


def stats_of(frames: Sequence[np.ndarray], method: str, masks: Sequence[np.ndarray | None] | None = None) -> ColorStats:
    """Statistics over float frames in [0, 1] (each over its mask, if given)."""
    stats = ColorStats(method)
    for i, frame in enumerate(frames):
        stats.add(region_pixels(frame, None if masks is None else masks[i]))
    return stats


def match_video(
    frames: Iterable[np.ndarray],
    starts: Sequence[int],
    method: str,
    strength: float,
    anchor: str = "join",
    log: Callable[[str], None] | None = None,
) -> Iterator[np.ndarray]:
    """Post hoc colour match of a finished video (uint8 (H, W, 3) RGB frames). anchor "join": each clip moved so
    that its first frame has the colours of the (matched) frame before it; "first": each clip moved to the first
    clip's colour distribution. Yields uint8 frames."""
    if anchor not in ANCHORS:
        raise ValueError(f"colour match anchor {anchor!r}: choose one of {', '.join(ANCHORS)}")
    first: ColorStats | None = None
    previous: np.ndarray | None = None
    for index, clip in enumerate(split_clips(frames, starts)):
        floats = [frame.astype(np.float32) / 255 for frame in clip]
        if index == 0:
            first = stats_of(floats, method) if anchor == "first" else None
            previous = floats[-1]
            yield from clip
            continue
        src, ref = (
            (stats_of(floats, method), first)
            if anchor == "first"
            else (stats_of(floats[:1], method), stats_of([previous], method))
        )
        fn = transform(method, src, ref)
        out = [apply(frame, fn, strength) for frame in floats]
        if log:
            seen = out if anchor == "first" else out[:1]
            log(
                f"clip {index}: ΔE to the {'first clip' if anchor == 'first' else 'frame before it'} "
                f"{float(delta_e(lab_of(src), lab_of(ref))):.2f} → "
                f"{float(delta_e(lab_of(stats_of(seen, method)), lab_of(ref))):.2f}"
            )
        previous = out[-1]
        yield from (np.round(frame * 255).astype(np.uint8) for frame in out)


def lab_of(stats: ColorStats) -> np.ndarray:
    """Mean CIELAB colour of the pixels behind `stats` (from their mean RGB: close enough for logs)."""
    return srgb_to_lab(stats.mean)


def clip_lab_mean(frames: Sequence[np.ndarray]) -> np.ndarray:
    return np.mean([frame_lab_mean(frame) for frame in frames], axis=0)


# ---- the drift metric ---------------------------------------------------------------------------------------------


def frame_lab_mean(frame: np.ndarray, mask: np.ndarray | None = None, stride: int = 1) -> np.ndarray:
    """Mean CIELAB colour of an (H, W, 3) frame (uint8, or float in [0, 1]), over the mask if given; `stride`
    samples every n-th pixel in each direction (a mean colour needs no full resolution)."""
    frame = np.asarray(frame)
    rgb = frame.astype(np.float64) / 255 if frame.dtype == np.uint8 else frame.astype(np.float64)
    rgb = rgb[::stride, ::stride]
    lab = srgb_to_lab(rgb).reshape(-1, 3)
    if mask is not None:
        keep = np.asarray(mask)[::stride, ::stride].reshape(-1) > 0.5
        if not keep.any():
            return np.full(3, np.nan)
        lab = lab[keep]
    return lab.mean(axis=0)


def drift_report(frame_labs: np.ndarray, starts: Sequence[int]) -> dict:
    """Colour drift of a video from the mean CIELAB colour of each frame (F, 3) and the clip starts:
    - join_delta_e: per clip join, ΔE between the last frame before it and the first frame after it;
    - within_clip_delta_e_median: median ΔE between consecutive frames inside clips (what motion alone
      gives: a join much above it is a visible jump);
    - vs_first_clip_delta_e: per clip, ΔE between its mean colour and the first clip's.
    Frames with no colour (an empty mask) are left out."""
    labs = np.asarray(frame_labs, dtype=np.float64)
    bounds = [s for s in starts[1:] if 0 < s < len(labs)]
    steps = delta_e(labs[1:], labs[:-1]) if len(labs) > 1 else np.zeros(0)
    joins = [float(steps[b - 1]) for b in bounds]
    inside = np.delete(steps, [b - 1 for b in bounds]) if len(steps) else steps
    edges = [*[s for s in starts if s < len(labs)], len(labs)]
    clip_means = [np.nanmean(labs[a:b], axis=0) for a, b in itertools.pairwise(edges)]
    vs_first = [float(delta_e(mean, clip_means[0])) for mean in clip_means] if clip_means else []

    def finite(values):
        return [v for v in values if np.isfinite(v)]

    inside = finite(inside.tolist())
    return {
        "clips": len(clip_means),
        "clip_starts": [int(s) for s in edges[:-1]],
        "join_delta_e": [round(v, 3) for v in joins],
        "join_delta_e_mean": round(float(np.mean(finite(joins))), 3) if finite(joins) else None,
        "join_delta_e_max": round(float(np.max(finite(joins))), 3) if finite(joins) else None,
        "within_clip_delta_e_median": round(float(np.median(inside)), 3) if inside else None,
        "vs_first_clip_delta_e": [round(v, 3) for v in vs_first],
        "vs_first_clip_delta_e_max": round(float(np.max(finite(vs_first))), 3) if finite(vs_first) else None,
    }


def summary(report: dict) -> str:
    """One line for logs."""
    if report["clips"] < 2:
        return "colour drift: one clip, no join"
    return (
        f"colour drift over {report['clips']} clips: ΔE at joins mean {report['join_delta_e_mean']} max "
        f"{report['join_delta_e_max']} (inside clips, frame to frame: median "
        f"{report['within_clip_delta_e_median']}); clip colour vs the first clip: max "
        f"{report['vs_first_clip_delta_e_max']}"
    )
