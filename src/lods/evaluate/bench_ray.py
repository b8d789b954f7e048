"""The benchmarks on Ray (`lods bench quality|cfg --backend ray`): each run a Ray task, results as run_jobs's.

A worker process keeps the prior it loaded (`priors.cache`) for the next runs it is given; LoRA adapters a run adds
are removed after it. Runs whose metrics.json exists are read here and not sent to the cluster; a task whose
worker dies is retried by Ray, and its run resumes from its last checkpoint (`run_job` is idempotent).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from .bench_quality import BenchConfig, row_from_metrics, run_job


def run_job_shared(job: dict) -> dict:
    """`run_job` with the worker process's shared prior (loaded on its first run)."""
    from ..priors.cache import isolated_adapters, shared_prior

    cfg = job["config"]
    if (Path(cfg.out) / "metrics.json").exists():
        return run_job(job)
    try:
        prior = shared_prior(cfg.prior, cfg.device)
    except Exception as e:  # noqa: BLE001 - recorded like any failed run
        text = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        return row_from_metrics(job, None, f"failed: {type(e).__name__}: {text}", 0.0)
    with isolated_adapters(prior):
        return run_job(job, prior)


def lost_row(job: dict, error: BaseException) -> dict:
    return row_from_metrics(job, None, f"failed: worker lost ({type(error).__name__})", 0.0)


def run_jobs_ray(jobs: list[dict], bc: BenchConfig, on_row: Callable[[dict, int, int], None] | None = None) -> list[dict]:
    from ..ray_backend import run_on_ray

    rows: list = [None] * len(jobs)
    done = [0]

    def landed(job, row):
        rows[job["index"]] = row
        done[0] += 1
        if on_row is not None:
            on_row(row, done[0], len(jobs))

    todo = []
    for job in jobs:
        if (Path(job["config"].out) / "metrics.json").exists():
            landed(job, run_job(job))
        else:
            todo.append(job)
    cuda = any(str(j["config"].device).startswith("cuda") for j in todo)
    run_on_ray(run_job_shared, todo, address=bc.ray_address, num_cpus=bc.threads, num_gpus=bc.gpus_per_run if cuda else 0,
               threads=bc.threads, on_result=landed, on_lost=lost_row)
    return rows
