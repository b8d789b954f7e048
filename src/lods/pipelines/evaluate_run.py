"""`lods eval RUN_DIR`: reload a run's final scene and score it against the world's 3D truth."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import UserError
from ..utils.io import atomic_write_json, load_checkpoint
from .generate import build_scene, load_run_config, scene_render_fn


def evaluate_run(run_dir: Path) -> dict:
    from ..evaluate.world_eval import evaluate_against_truth
    from ..world.scene import PromptError, parse_prompt

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"no run folder at {run_dir}")
    cfg = load_run_config(run_dir)
    try:
        parse_prompt(cfg.prompt)
    except PromptError:
        raise UserError(f"{cfg.prompt!r} is not a caption of the world: ground-truth metrics need a world prompt") from None
    ckpt = run_dir / "checkpoints" / "last.safetensors"
    if not ckpt.exists():
        raise UserError(f"{run_dir} has no checkpoint to evaluate")
    tensors, _ = load_checkpoint(ckpt)
    scene = build_scene(cfg, torch.device("cpu"))
    scene.load_state_tensors({k[6:]: v for k, v in tensors.items() if k.startswith("scene/")})
    scene.eval()
    result = evaluate_against_truth(scene_render_fn(scene), cfg.prompt, n_views=cfg.export.eval_views)
    metrics_path = run_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    metrics["ground_truth"] = result
    atomic_write_json(metrics_path, metrics)
    return result
