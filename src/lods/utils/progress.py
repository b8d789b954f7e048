"""A rich progress bar that shows the step, named losses and it/s, as a `progress(step, total, logs)` callback.

The rate and the ETA count only the steps of this session: the first update (the first step run, which is past 1 on
a resumed run) sets the bar's starting point, so the steps done before a resume are not taken for this session's.
"""

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
def progress_bar(description: str, total: int, enabled: bool = True):
    """Yield a callback `(step, total, logs)`; the bar goes to stderr so stdout stays clean."""
    if not enabled:
        yield lambda step, total, logs=None: None
        return
    console = Console(file=sys.stderr)
    if not console.is_terminal:  # logs or pipes: a plain line now and then instead of a bar drawn only at the end
        yield _line_logger(description)
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
        if task is None:  # the bar appears with the first step, after all input checks passed; the rate counts from it
            bar.start()
            task = bar.add_task(description, total=total_steps, completed=step, logs="")
        text = " ".join(f"{k.removeprefix('loss_')}={v:.4g}" for k, v in (logs or {}).items() if isinstance(v, (int, float)))
        bar.update(task, completed=step, total=total_steps, logs=text)

    try:
        yield update
    finally:
        if task is not None:
            bar.stop()


def _line_logger(description: str, every_s: float = 30.0, clock=time.monotonic):
    first: tuple[int, float] | None = None  # (step, time) of this session's first update
    last = -float("inf")

    def update(step: int, total_steps: int, logs: dict | None = None):
        nonlocal first, last
        now = clock()
        if first is None:
            first = (step, now)
        if now - last < every_s and step < total_steps:
            return
        last = now
        done, seconds = step - first[0], now - first[1]
        rate = f"{done / seconds:.2f} it/s eta {(total_steps - step) * seconds / done:.0f}s" if done > 0 and seconds > 0 \
            else "-- it/s"
        text = " ".join(f"{k.removeprefix('loss_')}={v:.4g}" for k, v in (logs or {}).items() if isinstance(v, (int, float)))
        print(f"{description} {step}/{total_steps} {rate} {text}".rstrip(), file=sys.stderr, flush=True)

    return update
