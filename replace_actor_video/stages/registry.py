"""The stages, in pipeline order: what the UI makes a tab of and what the pipeline composes."""

from __future__ import annotations

from dataclasses import dataclass

from . import generate, mask, postprocess, preprocess, refine, upscale


@dataclass(frozen=True)
class StageEntry:
    name: str  # run directory and log name
    title: str  # UI tab
    script: str  # the thin entry point at the repo root
    options: tuple[type, ...]  # option dataclasses; RunOptions is added by every CLI


STAGES: tuple[StageEntry, ...] = (
    StageEntry("preprocess", "Preprocess", "run_preprocessing.py", (preprocess.PreprocessOptions, mask.MaskOptions)),
    StageEntry("mask", "Mask", "run_mask.py", (mask.MaskStageOptions, mask.MaskOptions)),
    StageEntry("generate", "Generation", "run_generation.py", (generate.GenerateOptions,)),
    StageEntry("refine", "Refine", "run_refine.py", (refine.RefineOptions, mask.MaskOptions)),
    StageEntry("postprocess", "Postprocess", "run_postprocess.py", (postprocess.PostprocessOptions,)),
    StageEntry("upscale", "Upscale", "run_upscale.py", (upscale.UpscaleOptions,)),
)
