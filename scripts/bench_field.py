"""Forward+backward speed of the radiance field (not a test): it/s at 64² with 64 samples per ray.

    python scripts/bench_field.py [--size 64] [--samples 64] [--steps 10] [--threads 1 2] [--no-occupancy]
        [--encodings triplane grid hashgrid]

Wall time on a machine that other jobs keep busy says little; the CPU time per iteration says more. With
busy cores, one thread is often faster than two (the two wait on each other).
"""

from __future__ import annotations

import argparse
import time

import torch

from lods.render.cameras import orbit_cameras
from lods.scenes.field import FieldConfig, RadianceField


def bench(encoding: str, size: int, samples: int, steps: int, warmup: int = 2, **extra) -> tuple[float, float]:
    """Iterations per second (wall clock) and CPU seconds per iteration, for one view rendered and fitted."""
    torch.manual_seed(0)
    field = RadianceField(FieldConfig(encoding=encoding, num_samples=samples, **extra))
    opt = torch.optim.Adam(field.param_groups())
    cams = orbit_cameras([15.0], [30.0], 2.5, 40.0)
    for i in range(warmup + steps):
        if i == warmup:
            t0, c0 = time.perf_counter(), time.process_time()
        out = field.render(cams, size)
        loss = (out["rgb"] - 0.5).square().mean() + 0.01 * field.regularizers(out, i)["loss_opacity"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps / (time.perf_counter() - t0), (time.process_time() - c0) / steps


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--encodings", nargs="+", default=["triplane", "grid", "hashgrid"])
    ap.add_argument("--no-occupancy", action="store_true", help="evaluate every sample (no empty-space skipping)")
    ap.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {args.size}² × {args.samples} samples per ray, 1 view")
    for threads in args.threads:
        torch.set_num_threads(threads)
        for enc in args.encodings:
            extra = {"occupancy_resolution": 0} if args.no_occupancy else {}
            ips, cpu = bench(enc, args.size, args.samples, args.steps, **extra)
            print(f"{threads} thread(s)  {enc:9s} {ips:6.2f} it/s  {1000 / ips:6.0f} ms/it wall  {1000 * cpu:6.0f} ms/it CPU")


if __name__ == "__main__":
    main()
