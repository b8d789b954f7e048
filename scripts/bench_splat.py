"""Forward / backward time of the CPU Gaussian rasterizer (not a test).

    python scripts/bench_splat.py [--sizes 32 64] [--counts 1000 4000] [--views 1] [--threads 1] [--repeats 5]

Scenes are GaussianScene's default "ball" init (radius 0.5, kNN scales, opacity 0.1) seen from 2.5 units
away with a 40 degree field of view. Prints the best of `repeats` runs, wall and process CPU time.
"""

from __future__ import annotations

import argparse
import time

import torch

from lods.render.cameras import orbit_cameras
from lods.render.splat_torch import rasterize_torch
from lods.scenes.gaussians import GaussiansConfig, GaussianScene


def bench(n: int, size: int, views: int, repeats: int) -> dict[str, float]:
    scene = GaussianScene(GaussiansConfig(num_points=n, seed=0))
    cams = orbit_cameras(torch.full((views,), 20.0), torch.linspace(0, 300, views), 2.5, 40.0)
    viewmats, Ks = cams.viewmats, cams.intrinsics(size, size)
    best = {"fwd_wall": float("inf"), "fwd_cpu": float("inf"), "bwd_wall": float("inf"), "bwd_cpu": float("inf")}
    for _ in range(repeats + 1):  # the first run warms up
        scene.zero_grad()
        t0, c0 = time.perf_counter(), time.process_time()
        out = rasterize_torch(scene.means, scene.quats, scene.get_scales(), scene.get_opacities(), scene.get_colors(),
                              viewmats, Ks, size, size, torch.ones(3))
        t1, c1 = time.perf_counter(), time.process_time()
        (out["rgb"].mean() + out["depth"].mean()).backward()
        t2, c2 = time.perf_counter(), time.process_time()
        for key, value in (("fwd_wall", t1 - t0), ("fwd_cpu", c1 - c0), ("bwd_wall", t2 - t1), ("bwd_cpu", c2 - c1)):
            best[key] = min(best[key], value)
    best["visible"] = float((out["radii"] > 0).all(-1).float().sum(-1).mean())
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--counts", type=int, nargs="+", default=[1000, 4000])
    parser.add_argument("--views", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), {args.views} view(s); times in ms (best of {args.repeats})")
    print(f"{'gaussians':>9} {'size':>5} {'visible':>8} {'fwd wall':>9} {'fwd cpu':>8} {'bwd wall':>9} {'bwd cpu':>8}")
    for n in args.counts:
        for size in args.sizes:
            r = bench(n, size, args.views, args.repeats)
            print(f"{n:>9} {size:>4}² {r['visible']:>8.0f} {1e3 * r['fwd_wall']:>9.1f} {1e3 * r['fwd_cpu']:>8.1f} "
                  f"{1e3 * r['bwd_wall']:>9.1f} {1e3 * r['bwd_cpu']:>8.1f}")


if __name__ == "__main__":
    main()
