"""Paired comparison of two benchmark results.csv files (e.g. one method at two CFG scales from separate runs).

    python scripts/compare_runs.py A/results.csv B/results.csv [--method-a sds] [--method-b lods-embedding]

Rows are paired on (backbone, seed, prompt); prints, per category and overall, B − A as the benchmark's own paired
table does (mean ± standard error, and on how many pairs B is better).
"""

from __future__ import annotations

import argparse

from lods.bench.results import read_csv
from lods.bench.stats import SUMMARY_METRICS, metric_value, paired_cells

METRICS = [m for m in SUMMARY_METRICS if m[0] in ("psnr", "ssim", "iou", "r_at_1", "abs_saturation_error", "seconds")]


def load(path: str, method: str | None) -> dict:
    return {(r["backbone"], r["seed"], r["prompt"]): r for r in read_csv(path)
            if not r["status"].startswith("failed") and (method is None or r["method"] == method)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a")
    ap.add_argument("b")
    ap.add_argument("--method-a")
    ap.add_argument("--method-b")
    args = ap.parse_args()
    a, b = load(args.a, args.method_a), load(args.b, args.method_b)
    keys = sorted(a.keys() & b.keys())
    if not keys:
        raise SystemExit("no run is in both files")
    groups: dict[str, list] = {}
    for k in keys:
        groups.setdefault(a[k]["category"], []).append(k)
    groups["all"] = keys
    print(f"A = {args.a} ({args.method_a or 'any method'}), B = {args.b} ({args.method_b or 'any method'})\n")
    print("| category | pairs | metric | A | B | B − A | B better |")
    print("|---|---|---|---|---|---|---|")
    for cat, ks in groups.items():
        pairs = [(b[k], a[k]) for k in ks]
        deltas, wins = paired_cells(pairs, METRICS)
        for (m, *_), delta, win in zip(METRICS, deltas, wins):
            mean_a = sum(metric_value(a[k], m) for k in ks) / len(ks)
            mean_b = sum(metric_value(b[k], m) for k in ks) / len(ks)
            print(f"| {cat} | {len(ks)} | {m} | {mean_a:.4g} | {mean_b:.4g} | {delta} | {win} |")


if __name__ == "__main__":
    main()
