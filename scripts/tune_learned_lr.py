"""Re-tune the learned branch's learning rate for the fast preset, in the 2D playground (issue 10, item 5).

For each method (lods-embedding, lods-lora) × learning rate × prompt × seed: one `distill2d` run at s = 1000 on
the embedded prior. Prints a table per method and lr (mean over prompts and seeds): saturation, realism (the
prior's denoising loss on the result; lower is better), the final `loss_learned`, and the learned branch's fit (its
loss on the result over the frozen prior's unconditional loss on the prompt's clean truth renders; ≤ 1.5 fits).
SDS at 7.5 is printed as the reference of a clean result. Rows land in OUT/rows.jsonl; a rerun skips them.

    python scripts/tune_learned_lr.py --out runs/tune-lr --steps 1000 --seeds 2
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import torch

from lods.guidance import GuidanceConfig, apply_switches, split_method
from lods.pipelines.distill2d import Distill2DConfig, run_distill2d
from lods.priors.prior import Prior

PROMPTS = ("a blue torus", "a green cylinder", "a red cube", "a yellow cone", "a cube", "a red object")
GRID = {"lods-embedding": ("embedding_lr", (1e-3, 1e-2, 3e-2)), "lods-lora": ("lora_lr", (1e-4, 1e-3, 3e-3))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/tune-lr")
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--scale", type=float, default=1000.0)
    ap.add_argument("--prompts", default=",".join(PROMPTS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--prior", default=None, help="a prior folder (default: the shipped one)")
    ap.add_argument("--lrs", default=None, help="override the grid: method=lr1:lr2,... e.g. lods-embedding=1e-3:1e-2; "
                    "a method may carry switches: lods-embedding+time_offset=1e-2")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows_path = out / "rows.jsonl"
    done = {json.dumps(r["key"]) for r in map(json.loads, rows_path.read_text().splitlines())} if rows_path.exists() else set()
    prior = Prior.load(args.prior)
    grid = dict(GRID)
    if args.lrs:
        for item in args.lrs.split(","):
            method, _, lrs = item.partition("=")
            grid[method] = (GRID[split_method(method)[0]][0], tuple(float(v) for v in lrs.split(":")))
    prompts = [p.strip() for p in args.prompts.split(",") if p.strip()]
    jobs = [("sds", None, None, 7.5)]
    for method, (field, lrs) in grid.items():
        jobs += [(method, field, lr, args.scale) for lr in lrs]
    for method, field, lr, scale in jobs:
        for prompt in prompts:
            for seed in range(args.seeds):
                key = [method, lr, scale, prompt, seed, args.steps, args.prior]
                if json.dumps(key) in done:
                    continue
                name_, switches = split_method(method)
                gcfg = apply_switches(GuidanceConfig(**({field: lr} if field else {})), switches)
                name = f"{method}-{lr or scale}-{prompt.replace(' ', '_')}-s{seed}"
                m = run_distill2d(Distill2DConfig(prompt=prompt, guidance=name_, steps=args.steps, guidance_scale=scale,
                                                  seed=seed, out=str(out / "runs" / name), log_every=0,
                                                  guidance_config=gcfg), prior=prior)
                row = {"key": key, "method": method, "lr": lr, "scale": scale, "prompt": prompt, "seed": seed,
                       "saturation": m["saturation"], "realism": m.get("prior_denoising_loss"),
                       "loss_learned": m["final"].get("loss_learned"), **(m.get("learned_fit") or {})}
                with rows_path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)
    rows = [json.loads(line) for line in rows_path.read_text().splitlines()]
    print("\n| method | lr | s | saturation | realism ↓ | loss_learned | fit ratio ↓ | fits | n |\n|---|---|---|---|---|---|---|---|---|")
    for method, field, lr, scale in jobs:
        sel = [r for r in rows if r["method"] == method and r["lr"] == lr and r["scale"] == scale and r["prompt"] in prompts
               and r["key"][5:] == [args.steps, args.prior]]
        if not sel:
            continue

        def ms(k):
            v = [r[k] for r in sel if r.get(k) is not None]
            return f"{statistics.mean(v):.3f} ± {statistics.pstdev(v):.3f}" if v else "–"

        measured = [r for r in sel if "fits" in r]
        fits = f"{sum(bool(r['fits']) for r in measured)}/{len(measured)}" if measured else "–"
        print(f"| {method} | {lr or '–'} | {scale:g} | {ms('saturation')} | {ms('realism')} | {ms('loss_learned')} | "
              f"{ms('fit_ratio')} | {fits} | {len(sel)} |")


if __name__ == "__main__":
    main()
