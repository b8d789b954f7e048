"""it/s of the text-to-3D loop for every backbone x guidance at the fast preset (embedded prior, CPU).

    LODS_THREADS=1 python scripts/bench_generate.py --steps 12

Runs each combination for --steps steps in this process (one after another, same seed) and prints a table;
the first --warmup steps of each are not timed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from lods.guidance import GUIDANCES
from lods.pipelines.presets import preset_config
from lods.pipelines.text_to_3d import run_generate


class _Done(Exception):
    pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--prompt", default="a red cube")
    ap.add_argument("--backbones", default="gs,nerf")
    ap.add_argument("--guidances", default=",".join(GUIDANCES))
    args = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("LODS_THREADS", torch.get_num_threads())))
    rows = []
    for backbone in args.backbones.split(","):
        for guidance in args.guidances.split(","):
            with tempfile.TemporaryDirectory() as tmp:
                cfg = preset_config("fast", backbone, guidance)
                cfg.prompt, cfg.steps, cfg.out = args.prompt, args.steps, f"{tmp}/run"
                cfg.checkpoint_every = 10**9
                stamps = []

                def tick(step, total, logs):
                    stamps.append(time.perf_counter())
                    if step == total:
                        raise _Done  # skip the exports: only the loop is timed

                try:
                    run_generate(cfg, progress=tick)
                except _Done:
                    pass
                except Exception as e:  # report and go on with the other combinations
                    rows.append((backbone, guidance, float("nan"), f"failed: {e}"))
                    continue
                timed = stamps[args.warmup:]
                rate = (len(timed) - 1) / (timed[-1] - timed[0])
                rows.append((backbone, guidance, rate, ""))
                print(f"{backbone:5s} {guidance:15s} {rate:6.2f} it/s", flush=True)
    base = {b: r for b, g, r, _ in rows if g == "sds"}
    print("\n| backbone | guidance | it/s | time per step vs sds |\n|---|---|---|---|")
    for b, g, r, note in rows:
        print(f"| {b} | {g} | {r:.2f} | {base.get(b, float('nan')) / r:.2f}x {note} |")


if __name__ == "__main__":
    main()
