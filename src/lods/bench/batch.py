"""`lods generate --prompts FILE`: many prompts through `run_generate`, the prior loaded once.

Each prompt gets its own run folder `OUT/<prompt-slug>` with the outputs of a single run. A prompt whose
metrics.json exists is skipped, one with a checkpoint resumes, a failed one is recorded and the others go on.
`OUT/results.csv` and `OUT/summary.md` list every prompt (status, time, metrics). Backends: in this process
(workers 1), a pool of worker processes (each loads the prior once), or Ray tasks (`ray.py`).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import Interrupted, UserError
from ..pipelines.run_config import GenerateConfig

COLUMNS = ["index", "prompt", "status", "seconds", "wall_seconds", "steps", "resumed_from_step", "psnr", "ssim",
           "iou", "r_at_1", "recognized_views", "n_views", "loss_distill", "loss_learned", "run_dir"]
_TRUTH = ("psnr", "ssim", "iou", "r_at_1", "recognized_views", "n_views")


@dataclass
class BatchConfig:
    template: GenerateConfig  # every setting but the prompt and the run folder
    prompts: list
    out: str = "outputs/batch"
    workers: int = 1
    threads: int | None = None  # torch threads per run (None: torch's default here, 1 in worker processes)
    backend: str = "local"  # "local" or "ray"
    ray_address: str | None = None
    gpus_per_run: float = 1.0  # Ray on CUDA: the GPU fraction a run asks for
    command: str = ""  # recorded in summary.md

    def validate(self) -> None:
        from .ray import check_backend

        if not self.prompts:
            raise UserError("no prompts to run")
        if self.workers < 1:
            raise UserError(f"--workers must be at least 1, got {self.workers}")
        if self.threads is not None and self.threads < 1:
            raise UserError(f"--threads must be at least 1, got {self.threads}")
        if not 0 < self.gpus_per_run <= 1024:
            raise UserError(f"--gpus-per-run must be positive, got {self.gpus_per_run}")
        check_backend(self.backend, self.ray_address)
        if self.backend == "local" and self.workers > 1 and self.template.device.startswith("cuda"):
            raise UserError("--workers runs CPU processes; on CUDA use --backend ray (with --gpus-per-run)")


def read_prompts(path) -> list[str]:
    """One prompt per line; blank lines and lines starting with `#` are skipped, repeats are dropped."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--prompts: no such file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"--prompts: cannot read {path} ({type(e).__name__})") from None
    prompts = [line.strip() for line in text.splitlines()]
    prompts = list(dict.fromkeys(p for p in prompts if p and not p.startswith("#")))
    if not prompts:
        raise UserError(f"--prompts: {path} holds no prompts")
    return prompts


def plan_batch(bc: BatchConfig) -> list[dict]:
    from .suites import unique_slugs

    slugs = unique_slugs(bc.prompts)
    jobs = []
    for i, prompt in enumerate(bc.prompts):
        cfg = dataclasses.replace(bc.template, prompt=prompt, out=str(Path(bc.out) / slugs[prompt]))
        cfg = dataclasses.replace(cfg, guidance_config=dataclasses.replace(cfg.guidance_config),
                                  export=dataclasses.replace(cfg.export), cameras=dataclasses.replace(cfg.cameras))
        jobs.append({"index": i, "prompt": prompt, "config": cfg})
    return jobs


# ---------------------------------------------------------------------------------------------- one prompt
def run_prompt(job: dict, prior=None) -> dict:
    """Run (or skip, or resume) one prompt with `prior` (None: the process's shared prior); returns its row.
    Never raises for a failed run."""
    from ..pipelines.text_to_3d import run_generate
    from ..priors.cache import isolated_adapters, shared_prior

    cfg = job["config"]
    out = Path(cfg.out)
    t0 = time.time()
    try:
        if (out / "metrics.json").exists():
            return row_of(job, json.loads((out / "metrics.json").read_text()), "done before", time.time() - t0)
        # a folder stopped before its first checkpoint starts over (RunDir checks it under its lock; nothing else
        # in it is deleted)
        resume = (out / "checkpoints" / "last.safetensors").exists()
        if prior is None:
            prior = shared_prior(cfg.prior, cfg.device)
        with isolated_adapters(prior):
            metrics = run_generate(cfg, resume=resume, prior=prior)
        status = "resumed" if resume else "ok"
    except (KeyboardInterrupt, Interrupted):  # a stop signal stops the benchmark; it is not a failed run
        raise
    except Exception as e:  # noqa: BLE001 - a failed prompt is a result; the others go on
        text = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        return row_of(job, None, f"failed: {type(e).__name__}: {text}", time.time() - t0)
    return row_of(job, metrics, status, time.time() - t0)


def row_of(job: dict, metrics: dict | None, status: str, wall: float) -> dict:
    cfg = job["config"]
    row = {c: "" for c in COLUMNS}
    row.update(index=job["index"], prompt=job["prompt"], status=status, wall_seconds=round(wall, 3), steps=cfg.steps,
               run_dir=str(cfg.out))
    if metrics is None:
        return row
    row.update(seconds=float(metrics.get("seconds", math.nan)), steps=int(metrics.get("steps", cfg.steps)),
               resumed_from_step=int(metrics.get("resumed_from_step", 0)))
    truth = metrics.get("ground_truth") or {}
    for k in _TRUTH:
        if k in truth:
            row[k] = truth[k]
    losses = metrics.get("final_losses") or {}
    for k in ("loss_distill", "loss_learned"):
        if k in losses:
            row[k] = float(losses[k])
    return row


def lost_row(job: dict, error: BaseException) -> dict:
    return row_of(job, None, f"failed: worker lost ({type(error).__name__})", 0.0)


# ---------------------------------------------------------------------------------------------- the batch
def run_batch(bc: BatchConfig, on_row: Callable[[dict, int, int], None] | None = None) -> dict:
    """Run every prompt; returns {"rows", "csv_path", "summary_path"}. Bad settings raise UserError before any
    run starts; a prompt that fails is a row with status "failed: ..."."""
    from .jobs import check_existing

    bc.validate()
    jobs = plan_batch(bc)
    for job in jobs:
        job["config"].validate()
        check_existing(job)
    out = Path(bc.out)
    out.mkdir(parents=True, exist_ok=True)
    done = [0]

    def landed(job, row):
        done[0] += 1
        if on_row is not None:
            on_row(row, done[0], len(jobs))

    t0 = time.time()
    if bc.backend == "ray":
        rows = _run_ray(bc, jobs, landed)
    elif bc.workers > 1:
        rows = _run_pool(bc, jobs, landed)
    else:
        rows = _run_here(bc, jobs, landed)
    wall = time.time() - t0
    csv_path = write_rows(out / "results.csv", rows)
    summary_path = out / "summary.md"
    from ..utils.io import atomic_write_text

    atomic_write_text(summary_path, render_summary(bc, rows, wall))
    return {"rows": rows, "csv_path": csv_path, "summary_path": summary_path, "wall_seconds": wall}


def _run_here(bc: BatchConfig, jobs: list[dict], landed) -> list[dict]:
    import torch

    from ..priors.prior import Prior

    before = torch.get_num_threads()
    torch.set_num_threads(bc.threads or before)
    prior = None
    rows = []
    try:
        for job in jobs:
            cfg = job["config"]
            if prior is None and not (Path(cfg.out) / "metrics.json").exists():
                prior = Prior.load(cfg.prior, device=cfg.device)  # once; a bad prior is bad input for the batch
            rows.append(run_prompt(job, prior))
            landed(job, rows[-1])
    finally:
        torch.set_num_threads(before)
    return rows


def _run_pool(bc: BatchConfig, jobs: list[dict], landed) -> list[dict]:
    from .runner import run_in_processes

    return run_in_processes(run_prompt, jobs, bc.workers, bc.threads or 1, lost_row, landed)


def _run_ray(bc: BatchConfig, jobs: list[dict], landed) -> list[dict]:
    from .ray import run_on_ray

    rows: list = [None] * len(jobs)
    todo = []
    for job in jobs:  # a run whose result exists is not sent to the cluster
        if (Path(job["config"].out) / "metrics.json").exists():
            rows[job["index"]] = run_prompt(job)
            landed(job, rows[job["index"]])
        else:
            todo.append(job)
    cuda = bc.template.device.startswith("cuda")
    threads = bc.threads or 1
    results = run_on_ray(run_prompt, todo, address=bc.ray_address, num_cpus=threads,
                         num_gpus=bc.gpus_per_run if cuda else 0, threads=threads, on_result=landed,
                         on_lost=lost_row, stop_dir=bc.out)
    for job, row in zip(todo, results):
        rows[job["index"]] = row
    return rows


# ---------------------------------------------------------------------------------------------- outputs
def write_rows(path: Path, rows: list[dict]) -> Path:
    from .results import write_csv

    return write_csv(path, rows, COLUMNS)


def _cell(v, fmt: str) -> str:
    return "–" if v in ("", None) or (isinstance(v, float) and math.isnan(v)) else fmt.format(float(v))


def render_summary(bc: BatchConfig, rows: list[dict], wall: float) -> str:
    t = bc.template
    failed = [r for r in rows if str(r["status"]).startswith("failed")]
    lines = [f"# Batch: {len(rows)} prompts", "",
             f"- Command: `{bc.command or '(called from Python)'}`",
             f"- Settings: {t.backbone}, {t.guidance}, preset {t.preset}, {t.steps} steps, seed {t.seed}, "
             f"device {t.device}, prior {t.prior or 'embedded'}",
             f"- Backend: {bc.backend}" + (f" ({bc.workers} worker processes)" if bc.backend == "local" and bc.workers > 1
                                          else "") + f"; wall time {wall:.1f} s",
             f"- Runs: {len(rows) - len(failed)} finished ({sum(r['status'] == 'done before' for r in rows)} before this "
             f"invocation, {sum(r['status'] == 'resumed' for r in rows)} resumed), {len(failed)} failed", "",
             "Time is the optimisation loop's (exports excluded). PSNR, IoU and R@1 compare with the world's truth "
             "(the embedded prior only).", "",
             "| # | prompt | status | time (s) | PSNR (dB) | IoU | R@1 | loss_distill | folder |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['index']} | {r['prompt']} | {r['status']} | {_cell(r['seconds'], '{:.1f}')} | "
                     f"{_cell(r['psnr'], '{:.2f}')} | {_cell(r['iou'], '{:.3f}')} | {_cell(r['r_at_1'], '{:.0f}')} | "
                     f"{_cell(r['loss_distill'], '{:.4g}')} | {Path(r['run_dir']).name} |")
    lines.append("")
    if failed:
        lines.append("Rerun the same command to retry the failed prompts; finished ones are skipped.")
        lines.append("")
    return "\n".join(lines)
