"""Text-to-3D: `run_generate` is the optimisation loop (pipelines/loop.py) with its default hooks."""

from __future__ import annotations

from .loop import LoopHooks, run_loop
from .run_config import GenerateConfig


def run_generate(cfg: GenerateConfig, resume: bool = False, progress=None, prior=None) -> dict:
    """Optimise a 3D scene for `cfg.prompt` into `cfg.out` (see `loop.run_loop`)."""
    return run_loop(cfg, LoopHooks(), resume=resume, progress=progress, prior=prior)
