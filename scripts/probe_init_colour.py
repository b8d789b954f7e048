"""Does a result's colour follow its start? Guidance-gap runs started from a coloured object, not the gray one.

Every 3DGS run starts from the same ball of splats, gray (0.5 ± 0.025), and in 3D several entries land on the gray
completion of colourless prompts far more often than the world draws it (docs/results.md, "Landing at the
average"). This probe tells the two readings apart: the method averages the colours (it ends gray from any start),
or it keeps the gray it started from (it ends in its start's colour). Each run is a `lods bench gap` job, scored as
the benchmark scores it, except that it starts from the ball recoloured (each splat keeps its jitter around the new
colour):
- 3d: the run's own ball of splats (its seed's), recoloured and passed as `--init-ply`;
- 2d: that ball, recoloured, rendered from the front camera over white, passed as `lods distill2d --init`
  (the 2D playground otherwise starts from noise).
`gray` runs start from the unchanged ball (3D: exactly the benchmark's run; 2D: the gray ball's picture).

    python scripts/probe_init_colour.py --dims 3d --prior embedded-latent --prompts "a cube" \
        --grid sds@1,sds@7.5,lods-embedding@1000 --colours gray,red,blue --seeds 1 --workers 2 --out runs/init-colour

Prints one row per run (prompt, entry, start colour, seed, nearest completion, saturation, realism) as a Markdown
table and writes OUT/results.csv. Finished runs are kept: rerunning the command continues it.
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

import torch

from lods.bench.gap import COLUMNS, GapConfig, parse_grid, plan_jobs, run_jobs
from lods.errors import UserError
from lods.evaluate.set_metrics import front_camera
from lods.scenes.gaussians import GaussianScene, rgb_to_sh, sh_to_rgb
from lods.world.shapes import COLORS

SIZE_2D = 64  # the picture's size; distill2d resizes it to the prior's


def recoloured_ball(scene_cfg, seed: int, colour: str) -> GaussianScene:
    """The ball a 3DGS run with this seed starts from, each splat's colour moved from 0.5 to the named colour."""
    scene = GaussianScene(scene_cfg, seed=seed)
    with torch.no_grad():
        rgb = sh_to_rgb(scene.f_dc[:, None], None, 0)
        scene.f_dc.copy_(rgb_to_sh((rgb - 0.5 + torch.tensor(COLORS[colour])).clamp(0, 1)))
    return scene


def start_picture(colour: str, path: Path) -> Path:
    """The recoloured ball of the default 3DGS settings (seed 0) from the front camera, over white, as a PNG."""
    from PIL import Image

    from lods.export.images import to_uint8
    from lods.pipelines.presets import preset_config

    scene = recoloured_ball(preset_config("fast", "gs", "sds").scene_config(), 0, colour)
    with torch.no_grad():
        rgb = scene.render(front_camera(), SIZE_2D, background=torch.ones(3))["rgb"][0]
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(to_uint8(rgb)).save(path)
    return path


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
    colours = args.colours.split(",")
    unknown = [c for c in colours if c not in COLORS]
    if unknown:
        sys.exit(f"unknown colour {unknown[0]!r}; the world's: {', '.join(COLORS)}")
    out = Path(args.out)
    jobs = []
    try:
        for colour in colours:
            gc = GapConfig(grid=parse_grid(args.grid), dims=args.dims, prompts=args.prompts.split(","), seeds=args.seeds,
                           steps=args.steps, prior=args.prior, out=str(out / colour))
            gc.validate()
            picture = start_picture(colour, out / "starts" / f"{colour}.png") if args.dims == "2d" else None
            for job in plan_jobs(gc):
                cfg = job["config"]
                if picture is not None:
                    cfg.init = str(picture)
                elif colour != "gray":
                    from lods.scenes.ply import save_ply

                    ply = out / "starts" / f"{colour}-seed{cfg.seed}.ply"
                    if not ply.exists():
                        ply.parent.mkdir(parents=True, exist_ok=True)
                        save_ply(recoloured_ball(cfg.scene_config(), cfg.seed, colour), ply)
                    cfg.init_ply = str(ply)
                job["start"] = colour
                job["index"] = len(jobs)
                jobs.append(job)
    except UserError as e:
        sys.exit(str(e))
    rows = run_jobs(jobs, args.workers, 1)  # in job order
    starts = [j["start"] for j in jobs]
    with (out / "results.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["start", *COLUMNS])
        w.writeheader()
        for start, r in zip(starts, rows):
            w.writerow({"start": start, **{c: r.get(c, "") for c in COLUMNS}})
    print("| prompt | entry | start | seed | nearest completion | saturation | realism | status |")
    print("|---|---|---|---|---|---|---|---|")
    for start, r in zip(starts, rows):
        sat = f"{float(r['saturation']):.2f}" if r.get("saturation") not in ("", None) else "–"
        real = f"{float(r['realism']):.3f}" if r.get("realism") not in ("", None) else "–"
        print(f"| {r['prompt']} | {r['method']} | {start} | {r['seed']} | "
              f"{r.get('nearest_completion') or '–'} | {sat} | {real} | {r['status']} |")
    return [{"start": start, **r} for start, r in zip(starts, rows)]


if __name__ == "__main__":
    main()
