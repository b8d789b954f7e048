"""The benchmark's results table: one row per run (COLUMNS), built from a run's metrics.json, as results.csv."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

NOT_RUN = "not run"  # the status of a job a --report-only invocation found unfinished


def is_finished(status) -> bool:
    """Whether a row's run finished (ok, done before, resumed, scored): neither failed nor "not run"."""
    return not str(status).startswith(("failed", NOT_RUN))


COLUMNS = [
    "method", "backbone", "cfg", "seed", "category", "prompt", "psnr", "ssim", "iou", "r_at_1", "recognized_views",
    "n_views", "saturation_error", "feature_similarity", "truth_r_at_1", "truth_recognized_views", "imagereward",
    "seconds", "seconds_per_step", "wall_seconds", "steps", "loss_distill", "loss_learned", "resumed_from_step", "status",
    "run_dir",
]


def recorded_seconds(run_dir: Path, default=None):
    """A finished run's time from its metrics.json (every step, across resumes); `default` without one."""
    try:
        return float(json.loads((Path(run_dir) / "metrics.json").read_text())["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return default


def uses_cfg(method: str) -> bool:
    from ..guidance import GUIDANCES, split_method

    return GUIDANCES[split_method(method)[0]].default_guidance_scale is not None


def row_from_metrics(job: dict, metrics: dict | None, status: str, wall: float) -> dict:
    cfg = job["config"]
    row = {c: "" for c in COLUMNS}
    row.update(method=job["method"], backbone=job["backbone"], seed=job["seed"], category=job["category"],
               prompt=job["prompt"], status=status, run_dir=str(cfg.out), wall_seconds=round(wall, 3),
               cfg=cfg.guidance_config.guidance_scale if uses_cfg(job["method"]) else "", steps=cfg.steps)
    for k in ("psnr", "ssim", "iou", "r_at_1", "saturation_error", "feature_similarity", "truth_r_at_1", "imagereward",
              "seconds", "seconds_per_step", "loss_distill", "loss_learned"):
        row[k] = math.nan
    row["recognized_views"] = row["n_views"] = row["resumed_from_step"] = row["truth_recognized_views"] = ""
    if metrics is None:
        return row
    truth = metrics.get("ground_truth") or {}
    for k in ("psnr", "ssim", "iou", "r_at_1", "saturation_error", "feature_similarity", "truth_r_at_1"):
        if k in truth:
            row[k] = float(truth[k])
    if "truth_recognized_views" in truth:
        row["truth_recognized_views"] = int(truth["truth_recognized_views"])
    if "recognized_views" in truth:
        row["recognized_views"] = int(truth["recognized_views"])
        row["n_views"] = int(truth.get("n_views", len((truth.get("per_view") or {}).get("psnr", []))))
    start = int(metrics.get("resumed_from_step", 0))
    steps = int(metrics.get("steps", cfg.steps))
    row["resumed_from_step"] = start
    row["steps"] = steps
    row["seconds"] = float(metrics["seconds"])  # every step's time, across resumes (runs.Stopwatch)
    row["seconds_per_step"] = row["seconds"] / max(1, steps)
    losses = metrics.get("final_losses") or {}
    row["loss_distill"] = float(losses.get("loss_distill", losses.get("loss_sds", math.nan)))  # loss_sds: runs before issue 12
    row["loss_learned"] = float(losses.get("loss_learned", losses.get("loss_prior", math.nan)))
    return row


def failed_row(job: dict, status: str) -> dict:
    return row_from_metrics(job, None, status, 0.0)


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    """Write `rows` atomically as a csv of `columns` (default: the quality benchmark's COLUMNS)."""
    from ..utils.io import atomic_write_text

    columns = COLUMNS if columns is None else columns
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: csv_value(r.get(k, "")) for k in columns})
    atomic_write_text(path, buf.getvalue())
    return path


def csv_value(v):
    """A cell as written to results.csv: floats with 6 significant digits, NaN as empty."""
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.6g}"
    return v


def read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))
