"""The benchmarks on Ray (`lods bench quality|cfg --backend ray`): each run a Ray task, rows as `run_jobs` gives.

A worker process keeps the prior it loaded (`priors.cache`) for the next runs it is given; LoRA adapters a run adds
are removed after it. Runs whose metrics.json exists are read here and not sent to the cluster; a task whose
worker dies is retried by Ray, and its run resumes from its last checkpoint (`run_job` is idempotent). The
benchmark's `run_job(job, prior)` and `failed_row(job, status)` are passed in (this module imports no benchmark).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable


def run_job_shared(run_job: Callable, failed_row: Callable, job: dict) -> dict:
    """`run_job(job, prior)` with the worker process's shared prior (loaded on its first run)."""
    from ..priors.cache import isolated_adapters, shared_prior

    cfg = job["config"]
    if (Path(cfg.out) / "metrics.json").exists():
        return run_job(job)
    try:
        prior = shared_prior(cfg.prior, cfg.device)
    except Exception as e:  # noqa: BLE001 - recorded like any failed run
        text = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
        return failed_row(job, f"failed: {type(e).__name__}: {text}")
    with isolated_adapters(prior):
        return run_job(job, prior)


def _lost(failed_row: Callable, job: dict, error: BaseException) -> dict:
    return failed_row(job, f"failed: worker lost ({type(error).__name__})")


def run_jobs_ray(jobs: list[dict], run_job: Callable, failed_row: Callable, *, ray_address: str | None = None,
                 threads: int = 1, gpus_per_run: float = 1.0,
                 on_row: Callable[[dict, int, int], None] | None = None) -> list[dict]:
    """Rows of `jobs` in their order; `run_job` and `failed_row` must be module-level functions."""
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
    run_on_ray(functools.partial(run_job_shared, run_job, failed_row), todo, address=ray_address, num_cpus=threads,
               num_gpus=gpus_per_run if cuda else 0, threads=threads, on_result=landed,
               on_lost=functools.partial(_lost, failed_row))
    return rows
