"""Does a result's colour follow its start? Guidance-gap runs started from a coloured object, not the gray one.

Every 3DGS run starts from the same ball of splats, gray (0.5 ± 0.025), and in 3D several entries land on the gray
completion of colourless prompts far more often than the world draws it (docs/results.md, "Landing at the
average"). This probe tells the two readings apart: the method averages the colours (it ends gray from any start),
or it keeps the gray it started from (it ends in its start's colour). Each run is a `lods bench gap` job with every
seed started from one colour (`--start-colours COLOUR`; bench/gap_starts.py: in 3D the run's ball recoloured, in 2D
its picture), one benchmark folder per colour (OUT/<colour>/), scored as the benchmark scores it. Unlike
`lods bench gap --start-colours`, which gives each seed one colour, the probe runs every colour on the same seeds.

    python scripts/probe_init_colour.py --dims 3d --prior embedded-latent --prompts "a cube" \
        --grid sds@1,sds@7.5,lods-embedding@1000 --colours gray,red,blue --seeds 1 --workers 2 --out runs/init-colour

Prints one row per run (prompt, entry, start colour, seed, nearest completion, saturation, realism) as a Markdown
table and writes OUT/results.csv. Finished runs are kept: rerunning the command continues it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lods.bench.gap_csv import write_rows
from lods.bench.gap import COLUMNS, GapConfig, parse_grid, plan_jobs, run_jobs
from lods.bench.gap_starts import write_starts
from lods.errors import UserError
from lods.world.shapes import COLORS


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dims", choices=("2d", "3d"), default="3d")
    ap.add_argument("--prior", default=None)
    ap.add_argument("--prompts", default="a cube", help="comma-separated world prompts")
    ap.add_argument("--grid", default="sds@1,sds@7.5,lods-embedding@1000")
    ap.add_argument("--colours", default="gray,red,blue", help=f"comma-separated, of: {', '.join(COLORS)}")
    ap.add_argument("--seeds", type=int, default=1)
    ap.add_argument("--steps", type=int, default=None, help="default: the benchmark's (3d: the preset's; 2d: 1000)")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", default="runs/init-colour")
    args = ap.parse_args(argv)
    out = Path(args.out)
    jobs = []
    try:
        for colour in args.colours.split(","):  # every seed from this colour: the benchmark with one start colour
            gc = GapConfig(grid=parse_grid(args.grid), dims=args.dims, prompts=args.prompts.split(","), seeds=args.seeds,
                           steps=args.steps, prior=args.prior, out=str(out / colour), start_colours=[colour])
            gc.validate()
            jobs += plan_jobs(gc)
        write_starts(jobs)
    except UserError as e:
        sys.exit(str(e))
    for i, job in enumerate(jobs):
        job["index"] = i
    rows = run_jobs(jobs, args.workers, 1)  # in job order
    write_rows(out / "results.csv", rows, COLUMNS)
    print("| prompt | entry | start | seed | nearest completion | saturation | realism | status |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        sat = f"{float(r['saturation']):.2f}" if r.get("saturation") not in ("", None) else "–"
        real = f"{float(r['realism']):.3f}" if r.get("realism") not in ("", None) else "–"
        print(f"| {r['prompt']} | {r['method']} | {r['start']} | {r['seed']} | "
              f"{r.get('nearest_completion') or '–'} | {sat} | {real} | {r['status']} |")
    return rows


if __name__ == "__main__":
    main()
