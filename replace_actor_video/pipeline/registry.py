"""The stages, in pipeline order: what the UI makes a tab of and what the pipeline composes."""

from __future__ import annotations

from dataclasses import dataclass

from ..mask.options import MaskOptions, MaskStageOptions
from ..stages.postprocess import PostprocessOptions
from ..stages.upscale import UpscaleOptions
from ..upstream.wan.generate import GenerateOptions
from ..upstream.wan.preprocess import PreprocessOptions
from .refine import RefineOptions


@dataclass(frozen=True)
class StageEntry:
    name: str  # run directory and log name
    title: str  # UI tab
    script: str  # the thin entry point at the repo root
    options: tuple[type, ...]  # option dataclasses; RunOptions is added by every CLI


STAGES: tuple[StageEntry, ...] = (
    StageEntry("preprocess", "Preprocess", "run_preprocessing.py", (PreprocessOptions, MaskOptions)),
    StageEntry("mask", "Mask", "run_mask.py", (MaskStageOptions, MaskOptions)),
    StageEntry("generate", "Generation", "run_generation.py", (GenerateOptions,)),
    StageEntry("refine", "Refine", "run_refine.py", (RefineOptions, MaskOptions)),
    StageEntry("postprocess", "Postprocess", "run_postprocess.py", (PostprocessOptions,)),
    StageEntry("upscale", "Upscale", "run_upscale.py", (UpscaleOptions,)),
)
