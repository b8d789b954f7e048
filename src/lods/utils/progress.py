"""A rich progress bar that shows the step, named losses and it/s, as a `progress(step, total, logs)` callback."""

from __future__ import annotations

import contextlib
import sys
import time

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class _Rate(TextColumn):
    def __init__(self):
        super().__init__("")

    def render(self, task):
        from rich.text import Text

        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} it/s" if speed else "-- it/s", style="progress.data.speed")


@contextlib.contextmanager
def progress_bar(description: str, total: int, start: int = 0, enabled: bool = True):
    """Yield a callback `(step, total, logs)`; the bar goes to stderr so stdout stays clean."""
    if not enabled:
        yield lambda step, total, logs=None: None
        return
    console = Console(file=sys.stderr)
    if not console.is_terminal:  # logs or pipes: a plain line now and then instead of a bar drawn only at the end
        yield _line_logger(description, start)
        return
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _Rate(),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        TextColumn("{task.fields[logs]}"),
    ]
    bar = Progress(*columns, console=console, transient=False, refresh_per_second=4)
    task = None

    def update(step: int, total_steps: int, logs: dict | None = None):
        nonlocal task
        if task is None:  # the bar appears with the first step, after all input checks passed
            bar.start()
            task = bar.add_task(description, total=total_steps, completed=start, logs="")
        text = " ".join(f"{k.removeprefix('loss_')}={v:.4g}" for k, v in (logs or {}).items() if isinstance(v, (int, float)))
        bar.update(task, completed=step, total=total_steps, logs=text)

    try:
        yield update
    finally:
        if task is not None:
            bar.stop()


def _line_logger(description: str, start: int, every_s: float = 30.0):
    t0 = time.monotonic()
    last = -float("inf")

    def update(step: int, total_steps: int, logs: dict | None = None):
        nonlocal last
        now = time.monotonic()
        if now - last < every_s and step < total_steps:
            return
        last = now
        rate = (step - start) / max(now - t0, 1e-9)
        eta = (total_steps - step) / rate if rate > 0 else float("nan")
        text = " ".join(f"{k.removeprefix('loss_')}={v:.4g}" for k, v in (logs or {}).items() if isinstance(v, (int, float)))
        print(f"{description} {step}/{total_steps} {rate:.2f} it/s eta {eta:.0f}s {text}".rstrip(), file=sys.stderr, flush=True)

    return update
