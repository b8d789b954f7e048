"""The quality benchmark: every method × backbone × seed × prompt of a suite through `run_generate`.

Each run gets its own folder `OUT/runs/<method>-<backbone>[-cfg<s>]-s<seed>/<prompt-slug>`; a run whose
metrics.json exists is skipped, one with a checkpoint is resumed, so the benchmark can be stopped and rerun.
Results: `OUT/results.csv` (one row per run), `OUT/summary.md` (mean ± std per category and overall, paired
differences against SDS, the command, the hardware, the date) and `OUT/plots/` (a bar chart per metric and a
grid of views per prompt for a few prompts). With the world suite and the embedded prior every run is scored
against the world's 3D truth; with T3Bench and a Stable Diffusion prior, by ImageReward where it is installed.
"""

from __future__ import annotations

import datetime as _dt
import time
from pathlib import Path
from typing import Callable

from ..utils.io import atomic_write_text
from .config import BenchConfig
from .jobs import check_existing, plan_jobs
from .plots import write_plots
from .report import render_summary
from .results import write_csv
from .runner import run_bench_jobs
from .suites import load_suite
from .t3bench import score_imagereward


def run_bench(bc: BenchConfig, on_row: Callable[[dict, int, int], None] | None = None,
              message: Callable[[str], None] | None = None) -> dict:
    """Run the benchmark; returns {"rows", "summary_path", "csv_path", "plots", "notes"}."""
    bc.validate()
    suite = load_suite(bc.suite, bc.prompts_per_category, bc.categories)
    jobs = plan_jobs(bc, suite)
    for job in jobs:
        job["config"].validate()
        check_existing(job)
    out = Path(bc.out)
    out.mkdir(parents=True, exist_ok=True)
    started = _dt.datetime.now(_dt.timezone.utc)
    t0 = time.time()
    rows = run_bench_jobs(bc, jobs, on_row)
    wall = time.time() - t0
    notes = []
    if bc.suite == "t3bench":
        notes += score_imagereward(bc, rows, message)
    csv_path = write_csv(out / "results.csv", rows)
    plots = write_plots(bc, rows, out / "plots", suite)
    summary_path = out / "summary.md"
    atomic_write_text(summary_path, render_summary(bc, rows, suite, started, wall, plots, notes))
    return {"rows": rows, "csv_path": csv_path, "summary_path": summary_path, "plots": plots, "notes": notes}
