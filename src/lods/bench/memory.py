"""Peak memory of one guidance step (the speed benchmark's memory column).

On CUDA, torch.cuda.max_memory_allocated during one step minus what was allocated before it. On CPU torch
allocates through malloc, which tracemalloc does not see, and the RSS keeps freed memory; the peak of the bytes
held by the tensors a step creates is read from torch.profiler's memory timeline (the same quantity as on CUDA,
without the caching allocator's rounding). If that private profiler API fails, the process's RSS is sampled every
0.5 ms during one step instead.
"""

from __future__ import annotations

import contextlib
import gc
import threading
import time

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _libc():
    import ctypes

    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


class _RssPeak:
    """Peak RSS above the RSS at entry, sampled by a thread (torch ops release the GIL)."""

    def __init__(self, interval: float = 0.0005):
        import psutil

        self.proc = psutil.Process()
        self.interval = interval
        self.peak = self.base = 0

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(self.interval)

    def __enter__(self):
        self.base = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)

    @property
    def extra_bytes(self) -> int:
        return max(0, self.peak - self.base)


def memory_methods(runners: dict, errors: dict, device, images, cameras, t) -> tuple[dict, str]:
    """Peak extra memory (bytes) of one step per method on these inputs, and how it was measured."""
    peaks: dict[str, float] = {}
    if device.type == "cuda":
        how = "torch.cuda.max_memory_allocated during one step, minus the memory allocated before it"
        for m, r in runners.items():
            if m in errors:
                continue
            gc.collect()
            torch.cuda.empty_cache()
            sync(device)
            base = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            r.step(images, cameras, t, seed=10_000)
            sync(device)
            peaks[m] = torch.cuda.max_memory_allocated(device) - base
        return peaks, how
    for m, r in runners.items():  # buffers the first step creates (Adam state) are not per-step cost
        if m not in errors:
            r.step(images, cameras, t, seed=10_000)
    try:
        for m, r in runners.items():
            if m not in errors:
                peaks[m] = profiled_peak_bytes(lambda: r.step(images, cameras, t, seed=10_001))
        how = ("peak of the bytes held by tensors the step allocates (torch.profiler's memory timeline; the models "
               "and inputs held before the step are not counted)")
        return peaks, how
    except Exception:  # noqa: BLE001 - a private profiler API: fall back to sampling the RSS
        pass
    return rss_peaks(runners, errors, images, cameras, t)


def profiled_peak_bytes(fn) -> int:
    """Peak of live tensor bytes created during `fn()` (CPU), from the profiler's memory timeline."""
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import Action

    with _quiet_stderr(), profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                                  with_stack=True) as prof:
        fn()
    current = peak = 0
    for _, action, _, size in prof._memory_profile().timeline:
        if action == Action.CREATE:
            current += size
        elif action == Action.DESTROY:
            current -= size
        peak = max(peak, current)
    return peak


@contextlib.contextmanager
def _quiet_stderr():
    """Silence the profiler's C++ start/stop lines (written to file descriptor 2) for the block."""
    import os
    import sys

    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def rss_peaks(runners: dict, errors: dict, images, cameras, t) -> tuple[dict, str]:
    try:
        import psutil  # noqa: F401
    except ImportError:
        return {}, "not measured on CPU: neither the profiler's memory timeline nor psutil is available"
    libc = _libc()
    if libc is not None:
        libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD: fixed, so freed tensors are unmapped at once
    how = ("peak process RSS during one step minus the RSS before it, sampled every 0.5 ms (psutil), malloc's mmap "
           "threshold fixed at 64 KiB" + ("" if libc is not None else " (could not be set: no glibc)"))
    peaks = {}
    for m, r in runners.items():
        if m in errors:
            continue
        gc.collect()
        if libc is not None:
            libc.malloc_trim(0)
        with _RssPeak() as rss:
            r.step(images, cameras, t, seed=10_001)
        peaks[m] = rss.extra_bytes
    return peaks, how
