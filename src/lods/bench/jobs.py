"""The quality benchmark's jobs: one `run_generate` config per method × backbone × seed × prompt (× CFG scale),
each in its own folder `OUT/runs/<method>-<backbone>[-cfg<s>]-s<seed>/<prompt-slug>`, and how one job is run.

A job is a dict: method, backbone, seed, category, prompt, cfg_requested, config (a GenerateConfig), index.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

from ..errors import Interrupted, UserError
from .config import BenchConfig
from .results import row_from_metrics
from .stats import cfg_label
from .suites import SuitePrompt, unique_slugs


def run_group(method: str, backbone: str, seed: int, scale: float | None) -> str:
    label = cfg_label(scale)
    return f"{method}-{backbone}" + (f"-cfg{label}" if label else "") + f"-s{seed}"


def make_generate_config(bc: BenchConfig, method: str, backbone: str, seed: int, prompt: str, scale, out: Path):
    from ..guidance import apply_switches, split_method
    from ..pipelines.presets import preset_config

    name, switches = split_method(method)
    cfg = preset_config(bc.resolved_preset(), backbone, name)
    cfg.guidance_config = apply_switches(cfg.guidance_config, switches)
    cfg.prompt, cfg.seed, cfg.out = prompt, seed, str(out)
    if bc.prior is not None:
        cfg.prior = bc.prior
    if bc.device is not None:
        cfg.device = bc.device
    if bc.steps is not None:
        cfg.steps = bc.steps
    if scale is not None:
        cfg.guidance_config.guidance_scale = float(scale)
    if bc.render_size is not None:
        cfg.render_size = bc.render_size
    if bc.num_points is not None and backbone == "gs":
        cfg.gaussians = {**cfg.gaussians, "num_points": bc.num_points}
    for k, v in (bc.export or {}).items():
        if not hasattr(cfg.export, k):
            raise UserError(f"unknown export setting {k!r}")
        setattr(cfg.export, k, v)
    cfg.checkpoint_every = max(1, min(cfg.checkpoint_every, cfg.steps))
    return cfg


def plan_jobs(bc: BenchConfig, suite: list[SuitePrompt]) -> list[dict]:
    """Jobs in an order that interleaves methods (workers running side by side run different methods)."""
    slugs = unique_slugs([s.prompt for s in suite])
    out = Path(bc.out)
    jobs = []
    for seed in range(bc.seeds):
        for sp in suite:
            for backbone in bc.backbones:
                for scale in bc.cfg_scales:
                    for method in bc.methods:
                        run_dir = out / "runs" / run_group(method, backbone, seed, scale) / slugs[sp.prompt]
                        cfg = make_generate_config(bc, method, backbone, seed, sp.prompt, scale, run_dir)
                        jobs.append({"method": method, "backbone": backbone, "seed": seed, "category": sp.category,
                                     "prompt": sp.prompt, "cfg_requested": scale, "config": cfg, "index": len(jobs)})
    return jobs


_COMPARED = ("prompt", "backbone", "guidance", "seed", "steps", "prior", "preset", "render_size", "device", "init_ply")


def check_existing(job: dict) -> None:
    """A run folder left by an earlier benchmark must have been made with the same settings."""
    import yaml

    cfg = job["config"]
    path = Path(cfg.out) / "config.yaml"
    if not path.exists():
        return
    old = yaml.safe_load(path.read_text()) or {}
    new = dataclasses.asdict(cfg)
    diffs = [k for k in _COMPARED if old.get(k) != new.get(k)]
    old_s = (old.get("guidance_config") or {}).get("guidance_scale")
    if old_s != new["guidance_config"]["guidance_scale"]:
        diffs.append("guidance_scale")
    if diffs:
        k = diffs[0]
        was = old_s if k == "guidance_scale" else old.get(k)
        now = new["guidance_config"]["guidance_scale"] if k == "guidance_scale" else new.get(k)
        raise UserError(f"{path.parent} holds a run made with other settings ({k}: {was!r} there, {now!r} now); "
                        "choose another --out, or delete that run folder")


def run_job(job: dict, prior=None) -> dict:
    """Run (or skip, or resume) one benchmark run; returns its results row. Never raises for a failed run.
    `prior`: an already-loaded prior for the run (None: run_generate loads it)."""
    from ..pipelines.text_to_3d import run_generate

    cfg = job["config"]
    out = Path(cfg.out)
    t0 = time.time()
    try:
        if (out / "metrics.json").exists():
            metrics = json.loads((out / "metrics.json").read_text())
            status = "done before"
        elif (out / "checkpoints" / "last.safetensors").exists():
            metrics = run_generate(cfg, resume=True, prior=prior)
            status = "resumed"
        else:  # a folder stopped before its first checkpoint starts over (RunDir checks it under its lock)
            metrics = run_generate(cfg, prior=prior)
            status = "ok"
    except (KeyboardInterrupt, Interrupted):  # a stop signal stops the benchmark; it is not a failed run
        raise
    except Exception as e:  # noqa: BLE001 - a failed run is a result; the others go on
        text = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        return row_from_metrics(job, None, f"failed: {type(e).__name__}: {text}", time.time() - t0)
    return row_from_metrics(job, metrics, status, time.time() - t0)
