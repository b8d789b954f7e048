"""Text-to-3D: `run_generate` is the optimisation loop (pipelines/loop.py) with its default hooks.

The names other modules import from here (configs, presets, the run-folder helpers) live in run_config.py,
presets.py and loop.py; they are re-exported for those callers.
"""

from __future__ import annotations

from .loop import LoopHooks, build_scene, finish, run_loop, scene_render_fn
from .presets import preset_config
from .run_config import BACKBONES, PRESETS, ExportConfig, GenerateConfig, load_run_config

__all__ = ["BACKBONES", "PRESETS", "ExportConfig", "GenerateConfig", "build_scene", "finish", "load_run_config",
           "preset_config", "run_generate", "scene_render_fn"]


def run_generate(cfg: GenerateConfig, resume: bool = False, progress=None, prior=None) -> dict:
    """Optimise a 3D scene for `cfg.prompt` into `cfg.out` (see `loop.run_loop`)."""
    return run_loop(cfg, LoopHooks(), resume=resume, progress=progress, prior=prior)
