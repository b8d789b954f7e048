"""Running the benchmarks' and batches' jobs on this machine: in this process, or in worker processes (spawned,
one torch thread count each). Ray, the other backend, is in ray.py."""

from __future__ import annotations

import os
from typing import Callable

from .config import BenchConfig
from .jobs import run_job
from .results import failed_row, row_from_metrics


_stop_requested = None  # in a worker: the pool's event, set when the benchmark is stopped


def worker_init(threads: int = 1, stop_requested=None) -> None:
    import torch

    global _stop_requested
    _stop_requested = stop_requested
    torch.set_num_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _unless_stopped(fn: Callable[[dict], dict], job: dict) -> dict:
    """`fn(job)` in a worker, unless the benchmark was stopped: the pool hands a worker queued jobs that shutdown
    cannot cancel, and a run started after the stop would run to its end."""
    from ..errors import Interrupted

    if _stop_requested is not None and _stop_requested.is_set():
        raise Interrupted(None, "stopped before this run started")
    return fn(job)


def _stop_workers(pool) -> None:
    """SIGTERM to every worker: each run checkpoints at its next step and stops (a later rerun resumes it)."""
    import signal

    for proc in list((getattr(pool, "_processes", None) or {}).values()):  # the executor's live workers
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGTERM)


def run_in_processes(fn: Callable[[dict], dict], jobs: list[dict], workers: int, threads: int,
                     crashed: Callable[[dict, BaseException], dict], landed: Callable[[dict, dict], None]) -> list[dict]:
    """`fn(job)` for every job (each with an "index") in `workers` processes; rows in job order. A worker that dies
    gives `crashed(job, error)`; `landed(job, row)` is called as each row arrives. SIGINT or SIGTERM to this process
    (or a worker's run stopped by one) stops every worker's run at a checkpoint and raises here."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from ..errors import Interrupted
    from ..runs import stop_signals_raise_interrupt

    rows: list = [None] * len(jobs)
    ctx = mp.get_context("spawn")
    stop_requested = ctx.Event()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=worker_init,
                               initargs=(threads, stop_requested))
    with stop_signals_raise_interrupt():  # SIGINT or SIGTERM here: every worker's run checkpoints and stops
        try:
            futures = {pool.submit(_unless_stopped, fn, job): job for job in jobs}
            for fut in as_completed(futures):
                job = futures[fut]
                try:
                    row = fut.result()
                except Interrupted:
                    raise
                except Exception as e:  # noqa: BLE001 - a crashed worker (killed, out of memory)
                    row = crashed(job, e)
                rows[job["index"]] = row
                landed(job, row)
        except (KeyboardInterrupt, Interrupted):
            stop_requested.set()  # before the workers' runs stop, so that no queued run starts after them
            _stop_workers(pool)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
    pool.shutdown(wait=True)
    return rows


def run_jobs(jobs: list[dict], workers: int, on_row: Callable[[dict, int, int], None] | None = None,
             threads: int = 1) -> list[dict]:
    """Rows of `jobs` in their order: in this process (workers 1, `threads` torch threads) or in worker processes."""
    rows: list[dict | None] = [None] * len(jobs)
    done = 0
    if workers <= 1:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            for job in jobs:
                rows[job["index"]] = row = run_job(job)
                done += 1
                if on_row:
                    on_row(row, done, len(jobs))
        finally:
            torch.set_num_threads(before)
        return rows  # type: ignore[return-value]

    def crashed(job, e):
        return row_from_metrics(job, None, f"failed: worker crashed ({type(e).__name__})", 0.0)

    def landed(job, row):
        nonlocal done
        done += 1
        if on_row:
            on_row(row, done, len(jobs))

    return run_in_processes(run_job, jobs, workers, threads, crashed, landed)


def run_bench_jobs(bc: BenchConfig, jobs: list[dict], on_row: Callable[[dict, int, int], None] | None = None) -> list[dict]:
    """The jobs of a BenchConfig `bc` on its backend: local (`run_jobs`) or ray (a Ray task per run)."""
    if bc.backend == "ray":
        from .ray import run_jobs_ray

        return run_jobs_ray(jobs, run_job, failed_row, ray_address=bc.ray_address, threads=bc.threads,
                            gpus_per_run=bc.gpus_per_run, on_row=on_row, stop_dir=bc.out)
    return run_jobs(jobs, bc.workers, on_row, bc.threads)
