"""Paired comparison of two benchmark results.csv files (e.g. one method at two CFG scales from separate runs).

    python scripts/compare_runs.py A/results.csv B/results.csv [--method-a sds] [--method-b lods-embedding]

Rows are paired on (backbone, seed, prompt); prints B's and A's means and B − A (mean ± standard error, and on
how many pairs B is better) per category and overall.
"""

from __future__ import annotations

import argparse
import csv
import math
from collections import defaultdict

METRICS = [("psnr", 1), ("ssim", 1), ("iou", 1), ("r_at_1", 1), ("abs_saturation_error", -1), ("seconds", -1)]


def load(path: str, method: str | None) -> dict:
    rows = {}
    for r in csv.DictReader(open(path)):
        if r["status"].startswith("failed") or (method and r["method"] != method):
            continue
        r["abs_saturation_error"] = abs(float(r["saturation_error"]))
        rows[(r["backbone"], r["seed"], r["prompt"])] = r
    return rows


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
    groups = defaultdict(list)
    for k in keys:
        groups[a[k]["category"]].append(k)
        groups["all"].append(k)
    print(f"A = {args.a} ({args.method_a or 'any method'}), B = {args.b} ({args.method_b or 'any method'})")
    print("| category | pairs | metric | A | B | B − A | B better |")
    print("|---|---|---|---|---|---|---|")
    for cat, ks in groups.items():
        for m, sign in METRICS:
            va = [float(a[k][m]) for k in ks]
            vb = [float(b[k][m]) for k in ks]
            d = [y - x for x, y in zip(va, vb)]
            mean = sum(d) / len(d)
            se = math.sqrt(sum((x - mean) ** 2 for x in d) / (len(d) - 1) / len(d)) if len(d) > 1 else float("nan")
            better = sum(1 for x in d if x * sign > 0)
            ties = sum(1 for x in d if x == 0)
            print(f"| {cat} | {len(ks)} | {m} | {sum(va) / len(va):.4g} | {sum(vb) / len(vb):.4g} | "
                  f"{mean:+.3g} ± {se:.2g} | {better}/{len(ks) - ties} |")


if __name__ == "__main__":
    main()
