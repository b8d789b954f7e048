"""Small run folders for the viewer tests, written by the real export code (finish()) from known scenes."""

import dataclasses
from pathlib import Path

from lods.config import dump_yaml
from lods.pipelines.loop import finish
from lods.pipelines.run_config import ExportConfig, GenerateConfig
from lods.utils.io import atomic_write_text


class NoPrior:
    vocabulary = None  # no ground-truth metrics


def write_run(scene, out: Path, backbone: str = "gs", prompt: str = "a red cone", steps: int = 4, **export) -> Path:
    cfg = GenerateConfig(prompt=prompt, backbone=backbone, guidance="sds", steps=steps, out=str(out))
    cfg.export = dataclasses.replace(ExportConfig(mesh_resolution=32, turntable_frames=2, turntable_size=32,
                                                  views_size=32, eval_views=4), **export)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", dump_yaml(cfg))
    history = [{"step": i + 1, "loss_distill": 1.0 / (i + 1)} for i in range(steps)]
    finish(cfg, scene, NoPrior(), history, seconds=1.0)
    return out
