"""`lods eval RUN_DIR`: reload a run's final scene and score it against the world's 3D truth."""

from __future__ import annotations

import json
from pathlib import Path

import torch

from ..errors import UserError
from ..runs import RunDir
from ..utils.io import CorruptCheckpoint, atomic_write_json, load_checkpoint
from .loop import build_scene, scene_render_fn
from .run_config import load_run_config


def evaluate_run(run_dir: Path) -> dict:
    """Score the run's last checkpoint; rewrites metrics.json's `ground_truth` (under the run's lock).

    The result carries `checkpoint_step` and `unfinished` (True when the checkpoint is short of the run's steps)."""
    from ..evaluate.world_eval import evaluate_against_truth
    from ..world.captions import parse_spec
    from ..world.scene import PromptError

    run_dir = Path(run_dir)
    with RunDir(run_dir, task="eval").open_existing():
        cfg = load_run_config(run_dir)
        try:
            parse_spec(cfg.prompt)  # specified or not: the truth is the set of its completions
        except PromptError:
            raise UserError(f"{cfg.prompt!r} is not a caption of the world: ground-truth metrics need a world prompt") from None
        ckpt = run_dir / "checkpoints" / "last.safetensors"
        if not ckpt.exists():
            raise UserError(f"{run_dir} has no checkpoint to evaluate")
        metrics_path = run_dir / "metrics.json"
        metrics = _read_metrics(metrics_path)
        tensors, meta = load_checkpoint(ckpt)
        scene = build_scene(cfg, torch.device("cpu"))
        try:
            scene.load_state_tensors({k[6:]: v for k, v in tensors.items() if k.startswith("scene/")})
        except (KeyError, ValueError, RuntimeError, TypeError, IndexError) as e:
            raise CorruptCheckpoint(f"{ckpt} does not fit the run's config.yaml ({str(e).splitlines()[0][:120]})") from None
        scene.eval()
        result = evaluate_against_truth(scene_render_fn(scene), cfg.prompt, n_views=cfg.export.eval_views,
                                        prior=_world_prior(cfg.prior))
        step = int(meta.get("step", 0))
        result["checkpoint_step"] = step
        result["unfinished"] = step < cfg.steps
        metrics["ground_truth"] = result
        atomic_write_json(metrics_path, metrics)
    return result


def _world_prior(source: str | None):
    """The run's prior for the realism score when it is a world prior on disk (never a download); else None."""
    from ..priors.prior import Prior

    if source is not None and not (Path(source).expanduser() / "lods_prior.json").is_file():
        return None
    return Prior.load(source)


def _read_metrics(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as e:
        raise UserError(f"{path} is not valid JSON ({str(e).splitlines()[0][:80]}); it was left as it is") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} is not a metrics object; it was left as it is")
    return data
