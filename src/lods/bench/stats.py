"""Statistics of benchmark rows: metric values, mean ± std, groups, and paired differences against a baseline.

Rows are dicts as in results.csv (values may be strings, "" or NaN for missing). This module is the public API
that `scripts/compare_runs.py` and the benchmark's summary and plots share.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

INF_CFG = 1e6  # "∞" in the CFG sweep, as docs/algorithm.md's 2D setting

SUMMARY_METRICS = [  # (column, table label, short label, higher is better? None: signed, no direction)
    ("psnr", "PSNR (dB) ↑", "PSNR", True),
    ("ssim", "SSIM ↑", "SSIM", True),
    ("iou", "IoU ↑", "IoU", True),
    ("r_at_1", "R@1 ↑", "R@1", True),
    ("recognized_frac", "recognised views ↑", "recognised", True),
    ("saturation_error", "saturation error (signed)", "sat. error", None),
    ("abs_saturation_error", "abs. saturation error ↓", "abs. sat. error", False),
    ("truth_r_at_1", "judge ceiling: R@1 of the truth", "truth R@1", None),
    ("truth_recognized_frac", "judge ceiling: truth recognised", "truth recognised", None),
    ("imagereward", "ImageReward ↑", "ImageReward", True),
    ("seconds", "s / asset ↓", "time", False),
]


# ---------------------------------------------------------------------------------------------- values
def metric_value(row: dict, key: str) -> float:
    """A row's metric as a float (NaN when missing); `recognized_frac`, `truth_recognized_frac` and
    `abs_saturation_error` are derived from the row's columns."""
    if key in ("recognized_frac", "truth_recognized_frac"):
        rv, n = row.get("recognized_views" if key == "recognized_frac" else "truth_recognized_views"), row.get("n_views")
        return float(rv) / float(n) if rv not in ("", None) and n not in ("", None, 0) else math.nan
    if key == "abs_saturation_error":
        return abs(metric_value(row, "saturation_error"))
    v = row.get(key, "")
    if v in ("", None):
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def finite(values) -> list[float]:
    return [v for v in values if not math.isnan(v)]


def mean_std(values) -> tuple[float, float, int]:
    """(mean, sample standard deviation, count) of the finite values; (nan, nan, 0) when there are none."""
    vals = finite(values)
    if not vals:
        return math.nan, math.nan, 0
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0), len(vals)


def format_mean_std(m: float, s: float, digits: int = 3) -> str:
    if math.isnan(m):
        return "–"
    return f"{m:.{digits}g} ± {s:.2g}" if abs(m) < 1000 else f"{m:.0f} ± {s:.0f}"


# ---------------------------------------------------------------------------------------------- paired differences
@dataclass(frozen=True)
class Paired:
    """row − baseline over pairs: mean, standard error of the mean, and how often the row is better or worse."""

    mean: float
    stderr: float
    n: int
    better: int
    worse: int


def paired_difference(pairs: list[tuple[dict, dict]], metric: str, higher: bool | None) -> Paired | None:
    """For (row, baseline row) pairs, the difference of `metric` (None: no finite difference). `higher`: whether a
    larger value is better (None: neither; better and worse then count nothing)."""
    d = finite(metric_value(r, metric) - metric_value(b, metric) for r, b in pairs)
    if not d:
        return None
    se = statistics.stdev(d) / math.sqrt(len(d)) if len(d) > 1 else 0.0
    better = sum(1 for x in d if (x > 0) == higher and x != 0)
    worse = sum(1 for x in d if (x < 0) == higher and x != 0)
    return Paired(statistics.fmean(d), se, len(d), better, worse)


def paired_cells(pairs: list[tuple[dict, dict]], metrics) -> tuple[list[str], list[str]]:
    """For (row, baseline row) pairs: per metric, "mean ± standard error" of row − baseline, and "better/decided"."""
    deltas, wins = [], []
    for m, _, _, higher in metrics:
        p = paired_difference(pairs, m, higher)
        if p is None:
            deltas.append("–")
            wins.append("–")
            continue
        deltas.append(f"{p.mean:+.3g} ± {p.stderr:.2g}")
        wins.append(f"{p.better}/{p.better + p.worse}")
    return deltas, wins


# ---------------------------------------------------------------------------------------------- counts
def tail_probability(k: int, chances: list[float]) -> float:
    """P(X ≥ k) for X the number of successes in independent trials with these chances (Poisson binomial).
    E.g. how likely k of n seeds land on one completion if each drew its completion as the world does."""
    if any(not 0.0 <= c <= 1.0 for c in chances):
        raise ValueError("chances must lie in [0, 1]")
    dist = [1.0]  # dist[j]: P(j successes so far)
    for c in chances:
        dist = [(dist[j] if j < len(dist) else 0.0) * (1 - c) + (dist[j - 1] * c if j > 0 else 0.0)
                for j in range(len(dist) + 1)]
    return min(1.0, sum(dist[max(k, 0):]))


# ---------------------------------------------------------------------------------------------- groups
def cfg_label(scale: float | None) -> str:
    if scale is None:
        return ""
    if scale >= INF_CFG:
        return "inf"
    return f"{scale:g}"


def cfg_float(v) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def group_key(row: dict, with_cfg: bool = True) -> tuple:
    """(method, backbone, CFG label): the CFG scale is part of every group (each method's own, or the sweep's)."""
    return (row["method"], row["backbone"], cfg_label(cfg_float(row["cfg"])) or "–")


def key_label(key: tuple) -> str:
    method, backbone, cfg = key
    return f"{method} {backbone}" + ("" if cfg == "–" else f" s={'∞' if cfg == 'inf' else cfg}")


def group_rows(rows: list[dict], with_cfg: bool) -> dict[tuple, list[dict]]:
    out: dict[tuple, list[dict]] = {}
    for r in rows:
        out.setdefault(group_key(r, with_cfg), []).append(r)
    return out


def metrics_present(rows: list[dict]) -> list[tuple[str, str, str, bool | None]]:
    return [m for m in SUMMARY_METRICS if finite(metric_value(r, m[0]) for r in rows)]


def plotted_metrics(rows: list[dict]) -> list[tuple[str, str, str, bool | None]]:
    """The metrics with a bar chart: the judge's ceiling (scores of the truth) is a table column only."""
    return [m for m in metrics_present(rows) if not m[0].startswith("truth_")]
