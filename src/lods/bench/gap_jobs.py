"""One job of the gap benchmark: run it (the 2D playground, or `lods generate`) and score it with the set metrics.

Each worker process loads the prior and the judge once; LoRA adapters a run adds are removed after it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import torch

SCORES = ("n_completions", "nearest_completion", "psnr", "ssim", "iou", "saturation", "saturation_error", "realism",
          "judge_color_confidence", "judge_shape_confidence", "judge_confidence", "recognized_views", "n_views")
LEARNED_KEYS = ("loss_learned", "loss_prior")  # the learned branch's denoising loss (new name first)
_JUDGE: list = []


def judge():
    from ..world.judge import Judge

    if not _JUDGE:
        _JUDGE.append(Judge.load())
    return _JUDGE[0]


def _load_png(path: Path) -> torch.Tensor:
    import numpy as np
    from PIL import Image

    arr = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)[None]


def _resolved_scale(job: dict, prior) -> float | None:
    from ..guidance import guidance_class

    cfg = job["config"]
    gcfg = cfg.guidance_config
    if getattr(cfg, "guidance_scale", None) is not None:  # 2D: the run's own field
        return float(cfg.guidance_scale)
    return guidance_class(cfg.guidance).resolve_guidance_scale(prior, gcfg)


def _negative(cfg, prior) -> str:
    neg = cfg.guidance_config.negative_prompt
    return prior.default_negative_prompt if neg is None else neg


def score_2d(image: torch.Tensor, prompt: str, prior, judge_) -> tuple[dict, torch.Tensor]:
    """Set metrics of one image (1, 3, H, W) against the completions' front view; also the nearest one's render."""
    from ..evaluate.metrics import saturation
    from ..evaluate.set_metrics import best_of_set, foreground, front_camera, judge_confidence, prompt_spec, realism, truth_set

    spec = prompt_spec(prompt)
    truth = truth_set(spec, front_camera(), image.shape[-1])
    best = best_of_set(image, None, truth)
    conf = judge_confidence(judge_, image, spec)
    data = {"n_completions": best["n_completions"], "nearest_completion": best["nearest_completion"],
            "saturation": float(saturation(image, foreground(image))[0]), "realism": realism(prior, image, prompt),
            **{k: float(v.mean()) for k, v in best["per_view"].items()},
            **{k: v for k, v in conf.items() if k != "per_view"}}
    return data, truth.rgb[best["nearest_index"]]


def _learned_fit(data: dict, metrics: dict, prior, truth_rgb: torch.Tensor | None, negative: str) -> None:
    """The learned branch's fit. A run that measured it (metrics.json `learned_fit`, evaluate/learned_fit.py: the
    branch on the final result against the frozen prior on the prompt's clean truth renders, one fixed t grid) is
    taken as it is; for older runs, the training loss at the end over the prior's loss on the nearest completion's
    canonical render under the negative prompt. Nothing for a method without a learned branch."""
    from ..evaluate.set_metrics import clean_loss

    fit = metrics.get("learned_fit")
    if fit:
        data.update(learned_loss=fit["learned_loss"], learned_loss_clean=fit["clean_reference_loss"],
                    learned_fit=fit["fit_ratio"])
        return
    loss = learned_loss(metrics.get("history") or [], metrics.get("final") or metrics.get("final_losses"))
    if loss is None:
        return
    data["learned_loss"] = loss
    if truth_rgb is not None:
        data["learned_loss_clean"] = clean_loss(prior, truth_rgb, negative)
        data["learned_fit"] = loss / data["learned_loss_clean"] if data["learned_loss_clean"] > 0 else math.nan


def run_2d(job: dict) -> tuple[dict, str]:
    from ..priors.cache import isolated_adapters, shared_prior
    from ..pipelines.distill2d import run_distill2d

    cfg = job["config"]
    out = Path(cfg.out)
    prior = shared_prior(cfg.prior, cfg.device)
    seconds, status = math.nan, "scored"  # a finished run whose scoring was interrupted: scored, not rerun
    if not (out / "metrics.json").exists():
        t0 = time.time()
        with isolated_adapters(prior):
            run_distill2d(cfg, prior=prior)
        seconds, status = time.time() - t0, "ok"
    metrics = json.loads((out / "metrics.json").read_text())
    data, truth_rgb = score_2d(_load_png(out / "image.png"), cfg.prompt, prior, judge())
    data.update(scale=metrics.get("guidance_scale"), seconds=seconds, steps=metrics.get("steps", cfg.steps),
                settings=settings_2d(cfg))
    _learned_fit(data, metrics, prior, truth_rgb, _negative(cfg, prior))
    return data, status


def run_3d(job: dict) -> tuple[dict | None, str]:
    from ..priors.cache import isolated_adapters, shared_prior
    from ..render.cameras import evaluation_cameras
    from ..evaluate.set_metrics import prompt_spec, truth_set
    from .jobs import run_job

    cfg = job["config"]
    out = Path(cfg.out)
    prior = shared_prior(cfg.prior, cfg.device)
    with isolated_adapters(prior):
        qrow = run_job(job, prior=prior)
    if str(qrow["status"]).startswith("failed"):
        return None, qrow["status"]
    metrics = json.loads((out / "metrics.json").read_text())
    truth = metrics.get("ground_truth") or {}

    data = {k: truth[k] for k in SCORES if truth.get(k) is not None}
    data.update(scale=_resolved_scale(job, prior), seconds=qrow.get("seconds"), steps=metrics.get("steps", cfg.steps))
    truth_rgb = None
    if truth.get("nearest_completion"):
        truths = truth_set(prompt_spec(truth["nearest_completion"]), evaluation_cameras(int(truth["n_views"])),
                           int(truth.get("size", 32)))
        truth_rgb = truths.rgb[0]
    _learned_fit(data, metrics, prior, truth_rgb, _negative(cfg, prior))
    return data, qrow["status"]


def check_existing_2d(cfg, gap: Path) -> None:
    """A 2D job folder left by an earlier benchmark must hold a run of the same settings (`gap` its gap.json)."""
    from ..errors import UserError
    from ..guidance import GuidanceConfig
    from ..pipelines.distill2d import Distill2DConfig
    from ..runs import differences, flatten

    new = settings_2d(cfg)
    if gap.exists():
        data = json.loads(gap.read_text())
        if "settings" not in data and "restored_from" in data:
            return  # restored from a csv row of the same job key (gap_restore.py)
        old = data.get("settings", {})
    elif (gap.parent / "config.yaml").exists():  # a run not yet scored: compare with distill2d's own config
        import yaml

        old = yaml.safe_load((gap.parent / "config.yaml").read_text()) or {}
        new = {k: new[k] for k in ("prompt", "guidance", "steps", "seed", "lr", "init")}
        old = {k: old.get(k) for k in new}
    else:
        return
    # settings added since a run was scored, at their default
    added = {**flatten({"guidance_config": dataclasses.asdict(GuidanceConfig())}), "lr": Distill2DConfig.lr, "init": None}
    diffs = differences(flatten(old), flatten(new), added)
    if diffs:
        raise UserError(f"{gap.parent} holds a run made with other settings ({diffs[0]}, there -> now); "
                        "choose another --out, or delete that folder")


def settings_2d(cfg) -> dict:
    return {"prompt": cfg.prompt, "guidance": cfg.guidance, "steps": cfg.steps, "seed": cfg.seed, "lr": cfg.lr, "prior": cfg.prior,
            "init": cfg.init, "guidance_scale": cfg.guidance_scale, "guidance_config": dataclasses.asdict(cfg.guidance_config)}


def learned_loss(history: list[dict], final: dict | None = None) -> float | None:
    """The learned branch's loss at the end: the mean over the last 10 logged steps (as generate's final_losses),
    else the final value; None for a method without one."""
    for key in LEARNED_KEYS:
        values = [h[key] for h in (history or [])[-10:] if key in h]
        if values:
            return sum(values) / len(values)
        if final and key in final:
            return float(final[key])
    return None
