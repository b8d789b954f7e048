"""Jobs in local worker processes (spawned, one torch thread count each): the suites' and the batch's pool."""

from __future__ import annotations

import os
from typing import Callable


def worker_init(threads: int = 1) -> None:
    import torch

    torch.set_num_threads(threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def run_in_processes(fn: Callable[[dict], dict], jobs: list[dict], workers: int, threads: int,
                     crashed: Callable[[dict, BaseException], dict], landed: Callable[[dict, dict], None]) -> list[dict]:
    """`fn(job)` for every job (each with an "index") in `workers` processes; rows in job order. A worker that dies
    gives `crashed(job, error)`; `landed(job, row)` is called as each row arrives."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    rows: list = [None] * len(jobs)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn"), initializer=worker_init,
                               initargs=(threads,))
    try:
        futures = {pool.submit(fn, job): job for job in jobs}
        for fut in as_completed(futures):
            job = futures[fut]
            try:
                row = fut.result()
            except Exception as e:  # noqa: BLE001 - a crashed worker (killed, out of memory)
                row = crashed(job, e)
            rows[job["index"]] = row
            landed(job, row)
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return rows
