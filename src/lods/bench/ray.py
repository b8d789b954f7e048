"""Ray as the distributed engine of the benchmarks and batches: one Ray task per run, retried when its worker is lost.

`run_on_ray(fn, items, ...)` calls `fn(item)` for every item as a Ray task with the resources a run needs (CPUs,
and a GPU fraction on CUDA) and returns the results in the order of `items`. `fn` must be a module-level function
(workers import it by name) that records its own failures in its result; a task whose worker dies (killed, out of
memory, node lost) is rerun by Ray up to `max_retries` times, so `fn` must be idempotent: the run functions of
lods skip a run whose metrics.json exists and resume one that has a checkpoint. A task still lost after its
retries becomes `on_lost(item, error)`. SIGINT or SIGTERM to this process stops the tasks as the local worker pool
does: no queued run starts, and running runs checkpoint at their next step (they watch a stop file in `stop_dir`,
the shared output folder). Ray is an optional extra: `pip install "lods[ray]"`.

`run_jobs_ray` runs the quality benchmark's jobs so (`lods bench quality|cfg --backend ray`): a worker process
keeps the prior it loaded (`priors.cache`) for the next runs it is given; LoRA adapters a run adds are removed
after it. Runs whose metrics.json exists are read here and not sent to the cluster. The benchmark's
`run_job(job, prior)` and `failed_row(job, status)` are passed in.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import Any, Callable

from ..errors import Interrupted, UserError
from ..runs import stop_file_exists, stop_signals_raise_interrupt, watch_stop_file

BACKENDS = ("local", "ray")
INSTALL_HINT = 'pip install "lods[ray]"'
STOP_WAIT_S = 300.0  # how long a stop waits for the running runs' step-boundary checkpoints before killing them


def check_backend(backend: str, ray_address: str | None = None) -> None:
    if backend not in BACKENDS:
        raise UserError(f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}")
    if ray_address is not None and backend != "ray":
        raise UserError("--ray-address needs --backend ray")
    if backend == "ray":
        if ray_address not in (None, "auto", "local"):
            probe(ray_address)
        import_ray()


def probe(address: str, timeout: float = 5.0) -> None:
    """Fail fast on a HOST:PORT nothing listens at (Ray itself retries for minutes)."""
    import socket

    hostport = address.split("://", 1)[-1].rstrip("/")
    host, sep, port = hostport.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise UserError(f"--ray-address wants 'auto' or HOST:PORT, got {address!r}")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            pass
    except OSError as e:
        raise UserError(f"--ray-address {address}: nothing answers there ({e.strerror or type(e).__name__}); "
                        "start the head with `ray start --head`") from None


def import_ray():
    try:
        import ray
    except ImportError:
        raise UserError(f"--backend ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def _task(fn: Callable[[Any], Any], item: Any, threads: int, stop_file: str | None = None) -> Any:
    """What a Ray worker runs: `fn(item)` with `threads` torch threads; a run stops at its next step boundary
    once `stop_file` exists, and does not start if it exists already."""
    import torch

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    torch.set_num_threads(max(1, threads))
    watch_stop_file(stop_file)
    try:
        if stop_file_exists():
            raise Interrupted(None, "stopped before this run started")
        return fn(item)
    finally:
        watch_stop_file(None)


def connect(address: str | None):
    """Join the Ray cluster at `address` ("auto": the one this machine belongs to), or, without one, the Ray
    already started in this process or a new local one. Returns (ray, whether we started it)."""
    ray = import_ray()
    if ray.is_initialized():
        return ray, False
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        where = address or "a new local instance"
        text = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot start or reach Ray at {where}: {text}") from None
    return ray, True


def run_on_ray(fn: Callable[[Any], Any], items: list, *, address: str | None = None, num_cpus: float = 1,
               num_gpus: float = 0, threads: int = 1, max_retries: int = 3,
               on_result: Callable[[Any, Any], None] | None = None,
               on_lost: Callable[[Any, BaseException], Any] | None = None, stop_dir: str | None = None) -> list:
    """`[fn(item) for item in items]`, each a Ray task; `on_result(item, result)` is called as each one lands.
    `stop_dir`: a folder every worker sees (the shared output folder), where a stop writes the file that stops the
    running runs at a step boundary. Ray's own cancel of a running task is a simulated SIGINT, which does nothing in
    a worker whose SIGINT is ignored (a cluster started as a background job) unless a run's handler is installed,
    and is known to miss tasks blocked outside Python (ray-project/ray#32954)."""
    if not items:
        return []
    stop_file = str(Path(stop_dir) / f".stop-{os.getpid()}-{time.time_ns()}") if stop_dir else None
    ray, started = connect(address)
    from ray.exceptions import RayError

    remote = ray.remote(_task).options(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=max_retries,
                                       retry_exceptions=False)
    results: list = [None] * len(items)
    pending: dict = {}
    try:
        with stop_signals_raise_interrupt():  # SIGINT, SIGTERM: the tasks stop at a step boundary (stop_tasks)
            try:
                pending.update({remote.remote(fn, item, threads, stop_file): i for i, item in enumerate(items)})
                while pending:
                    ready, _ = ray.wait(list(pending), num_returns=1)
                    for ref in ready:
                        i = pending.pop(ref)
                        try:
                            result = ray.get(ref)
                        except RayError as e:  # lost after its retries, or fn raised
                            if on_lost is None:
                                raise
                            result = on_lost(items[i], e)
                        results[i] = result
                        if on_result is not None:
                            on_result(items[i], result)
            except KeyboardInterrupt:
                stop_tasks(ray, list(pending), stop_file)
                raise
    finally:
        if stop_file:
            Path(stop_file).unlink(missing_ok=True)
        if started:
            ray.shutdown()
    return results


def stop_tasks(ray, refs: list, stop_file: str | None = None, wait_s: float | None = None) -> None:
    """Stop the tasks of `refs`: a queued one never starts; a running one sees `stop_file` (and gets Ray's
    KeyboardInterrupt), so a lods run checkpoints at its next step and stops, and is waited for. One still running
    after `wait_s`, or at a second signal, is killed (its run resumes from its last periodic checkpoint)."""
    if not refs:
        return
    wait_s = STOP_WAIT_S if wait_s is None else wait_s
    if stop_file:
        from ..utils.io import atomic_write_text

        try:
            Path(stop_file).parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(Path(stop_file), "stop\n")
        except OSError:  # e.g. a full disk: Ray's cancel below still reaches most runs, and the wait is bounded
            pass
    for ref in refs:
        ray.cancel(ref, force=False)
    try:
        _, left = ray.wait(refs, num_returns=len(refs), timeout=wait_s)
    except KeyboardInterrupt:
        left = refs
    for ref in left:
        try:
            ray.cancel(ref, force=True)
        except Exception:  # noqa: BLE001 - finished meanwhile
            pass


# ---------------------------------------------------------------------------------------------- benchmark jobs
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
                 on_row: Callable[[dict, int, int], None] | None = None, stop_dir: str | None = None) -> list[dict]:
    """Rows of `jobs` in their order; `run_job` and `failed_row` must be module-level functions."""
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
               on_lost=functools.partial(_lost, failed_row), stop_dir=stop_dir)
    return rows
