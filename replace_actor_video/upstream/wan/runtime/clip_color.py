"""Colour match inside upstream's clip loop (`WanAnimate.generate`, Wan2.2 wan/animate.py, commit 42bf4cf).

The loop, per clip: sample the latents, `out_frames = torch.stack(self.vae.decode([x0[0][:, 1:]]))`, keep
the clip's frames (dropping the first `refert_num` after the first clip), and take
`out_frames[0, :, -refert_num:]` as the next clip's temporal guide. The clip's decoded frames therefore
pass through `self.vae.decode` exactly once, before anything else sees them: wrapping that call (on this
one WanAnimate's VAE, for the duration of one generate()) corrects both the frames that are kept and the
guide the next clip starts from, so drift cannot compound through the guide.

What a clip is matched to (`anchor`):
- "join" (default): the guide it was given. A clip's first refert_num frames are the model's re-rendering of the
  previous clip's last frames (same moment, same content; upstream drops them from the output), so any colour
  difference between the two is exactly the drift this join added (the VAE round trip of the guide and the
  resampling); the transform that removes it is applied to the whole clip. The colour is continuous across every
  join and no join's drift is handed on, while colour changes the driving video asks for are kept.
- "first": the first clip's statistics (all its frames). Removes drift that grows inside clips too, but pulls any
  real colour change of the scene or the person back to the first clip's (docs/bench: ΔE at the joins of a video
  without drift whose colour slowly changes goes from 0.3 to 7).
Not the reference image: every clip, the first included, is rendered by the same model, VAE and framing, while
the reference is a still photo with its own grading and framing; matching to it would change the first clip too.

Replace mode: only the generated person changes. The model re-renders the whole frame, but the background
of every clip is conditioned on the source background (`bg_pixel_values`) afresh, so its colour cannot
drift from clip to clip; the person region (src_mask.mp4 = 1) is what is carried only by the guide. The
statistics come from the masked pixels of the clip and of its reference, and the correction is blended
in with the mask feathered over a few pixels (color_match.feather), so the background stays as generated.

The statements of WanAnimate.generate this relies on (one `self.vae.decode` call, the guide taken from its
frames, the clip step, the methods it calls to read and pad the inputs) are patch sites (patch_sites.py, "patch 6,
colour match"): the launcher checks them in the clone before `import wan` and refuses a clone that lacks one.

Standard library, numpy and torch (upstream's Python); the launcher loads this file and color_match.py beside it by
path and installs the wrapper (launcher.install_color_match).
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Mapping


class ClipColorMatcher:
    """Per generate() call: what each clip is matched to, and its correction."""

    def __init__(
        self,
        color_match,
        method: str,
        strength: float,
        anchor: str,
        clip_len: int,
        refert_num: int,
        log: Callable[[str], None],
    ) -> None:
        self.cm, self.method, self.strength, self.anchor = color_match, method, strength, anchor
        self.clip_len, self.refert_num, self.log = clip_len, refert_num, log
        self.clip = 0
        self.first = None  # anchor "first": the first clip's statistics
        self.guide = None  # anchor "join": the previous clip's last refert_num frames as they were handed on
        self.masks = None  # the replace-mode masks (T, H, W) in [0, 1], as upstream read them
        self.mask_index: list[int] | None = None  # padded frame → mask frame, from upstream's own padding

    def clip_masks(self) -> list | None:
        if self.masks is None or self.mask_index is None:
            return None
        start = self.clip * (self.clip_len - self.refert_num)
        return [self.masks[i] for i in self.mask_index[start : start + self.clip_len]]

    def references(self, video, masks):
        """(statistics of this clip, statistics it must get) for clip self.clip ≥ 1. "join": the clip's first
        refert_num frames re-render the guide it was given (same content): any colour difference between the two is
        drift added at this join. "first": the frames the clip keeps against the whole first clip."""
        cm, n = self.cm, self.refert_num
        pick = (lambda lo, hi: None) if masks is None else (lambda lo, hi: masks[lo:hi])
        if self.anchor == "first":
            return cm.stats_of(video[n:], self.method, pick(n, None)), self.first
        return cm.stats_of(video[:n], self.method, pick(0, n)), cm.stats_of(self.guide, self.method, pick(0, n))

    def on_decoded(self, frames) -> None:
        """frames: one decoded clip, a float tensor [3, T, H, W] in [-1, 1] (changed in place)."""
        import torch

        cm = self.cm
        started = time.perf_counter()
        video = ((frames.detach().float().permute(1, 2, 3, 0) + 1) / 2).cpu().numpy()  # [T, H, W, 3] in [0, 1]
        masks = self.clip_masks()
        index, self.clip = self.clip, self.clip + 1
        where = "person region" if masks is not None else "frame"
        if index == 0:
            self.first = cm.stats_of(video, self.method, masks) if self.anchor == "first" else None
            self.guide = video[-self.refert_num :].copy()
            self.log(
                f"colour match: {self.method}, strength {self.strength:g}, {where}, each clip matched to "
                + ("the first clip" if self.anchor == "first" else "the guide frames it was given")
            )
            return
        src, ref = self.references(video, masks)
        if src.count < cm.MIN_PIXELS or ref.count < cm.MIN_PIXELS:
            self.log(f"colour match: clip {index} left as is (no {where})")
            self.guide = video[-self.refert_num :].copy()
            return
        fn = cm.transform(self.method, src, ref)
        radius = cm.feather_radius(*video.shape[1:3])
        for t in range(video.shape[0]):
            weight = None if masks is None else cm.feather(masks[t], radius)
            video[t] = cm.apply(video[t], fn, self.strength, weight)
        frames.copy_(torch.from_numpy(video * 2 - 1).permute(3, 0, 1, 2).to(frames.dtype))
        self.guide = video[-self.refert_num :].copy()
        after, _ = self.references(video, masks)
        self.log(
            f"colour match: clip {index} mean colour ΔE to its reference "
            f"{float(cm.delta_e(cm.lab_of(src), cm.lab_of(ref))):.2f} → "
            f"{float(cm.delta_e(cm.lab_of(after), cm.lab_of(ref))):.2f} ({time.perf_counter() - started:.1f} s)"
        )


def _set_instance(obj, name: str, value) -> Callable[[], None]:
    """obj.name = value on the instance; returns how to put back what was there."""
    had, old = name in vars(obj), vars(obj).get(name)
    setattr(obj, name, value)

    def restore() -> None:
        if had:
            setattr(obj, name, old)
        else:
            delattr(obj, name)

    return restore


def wrap_generate(original: Callable, color_match, settings: Mapping, log: Callable[[str], None]) -> Callable:
    """WanAnimate.generate that colour-matches the clips of every call with what `settings` holds when it is called
    (method, strength, anchor); `original` is upstream's generate, `color_match` the color_match module."""
    signature = inspect.signature(original)

    @functools.wraps(original)
    def generate(self, *args, **kwargs):
        if settings["method"] == "off" or settings["strength"] == 0.0:
            return original(self, *args, **kwargs)
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        call = bound.arguments
        matcher = ClipColorMatcher(
            color_match,
            settings["method"],
            settings["strength"],
            settings["anchor"],
            int(call["clip_len"]),
            int(call["refert_num"]),
            log,
        )
        decode, prepare, prepare_replace = self.vae.decode, self.prepare_source, self.prepare_source_for_replace
        frames_read = {}

        def prepare_source(*a, **k):
            result = prepare(*a, **k)
            frames_read["count"] = len(result[0])
            return result

        def prepare_source_for_replace(*a, **k):
            bg_images, mask_images = prepare_replace(*a, **k)
            # the padding upstream applies to the masks, computed by its own functions on frame numbers
            target_len = self.get_valid_len(frames_read["count"], matcher.clip_len, overlap=matcher.refert_num)
            matcher.mask_index = [int(i) for i in self.inputs_padding(list(range(len(mask_images))), target_len)]
            matcher.masks = mask_images
            return bg_images, mask_images

        def vae_decode(zs, *a, **k):
            videos = decode(zs, *a, **k)
            for video in videos:
                matcher.on_decoded(video)
            return videos

        restores = [
            _set_instance(self.vae, "decode", vae_decode),
            _set_instance(self, "prepare_source", prepare_source),
            _set_instance(self, "prepare_source_for_replace", prepare_source_for_replace),
        ]
        try:
            return original(self, *args, **kwargs)
        finally:
            for restore in reversed(restores):
                restore()

    generate.rav_color_match = True
    return generate
