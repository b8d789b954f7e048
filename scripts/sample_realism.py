"""How clean are the prior's own samples? The yardstick of the guidance gap is realism: the prior's own denoising loss
on a result (evaluate/set_metrics.prior_denoising_loss; lower is cleaner). LODS at s = ∞ aims at the prior's
distribution without CFG (docs/algorithm.md), so the realism of the prior's samples at CFG 1 is what it can hope to
reach, and the samples at CFG 7.5 are what SDS at 7.5 aims at.

For each prompt: N DDIM samples (50 steps, eta 1, as `lods prior sample`) at each CFG scale, the world's truth renders,
and any distill2d run folders given, all scored the same way: the picture (as saved) encoded into the prior's space,
then its realism under the prompt (seed 0).

    python scripts/sample_realism.py "a blue torus" "a cube" --prior embedded-latent --cfgs 1,3,7.5 --n 16 \
        --runs "runs/warm/{slug}/sds" --out runs/sample-realism.jsonl

`{slug}` in a run path is the prompt with spaces as dashes. Prints one JSON line per (prompt, source).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import numpy as np
import torch

from lods.evaluate.learned_fit import world_truth_images
from lods.evaluate.set_metrics import prior_denoising_loss
from lods.priors.prior import Prior
from lods.priors.sampling import sample


def realism_each(prior, z: torch.Tensor, prompt: str) -> list[float]:
    return [prior_denoising_loss(prior, z[i:i + 1], prompt, seed=0) for i in range(z.shape[0])]


def summary(prompt: str, source: str, values: list[float]) -> dict:
    return {"prompt": prompt, "source": source, "n": len(values), "realism_mean": round(statistics.fmean(values), 4),
            "realism_sd": round(statistics.pstdev(values), 4), "realism_min": round(min(values), 4),
            "realism_max": round(max(values), 4)}


def picture(path: Path) -> torch.Tensor:
    from PIL import Image

    with Image.open(path) as im:
        return torch.from_numpy(np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)[None]


@torch.no_grad()
def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("prompts", nargs="+")
    ap.add_argument("--prior", default="embedded-latent")
    ap.add_argument("--cfgs", default="1,3,7.5")
    ap.add_argument("--n", type=int, default=16, help="samples per prompt and scale")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", nargs="*", default=[], help="distill2d run folders ({slug}: the prompt, dashed)")
    ap.add_argument("--out", default=None, help="append the rows to this jsonl")
    args = ap.parse_args(argv)
    prior = Prior.load(args.prior)
    rows = []
    for prompt in args.prompts:
        slug = prompt.replace(" ", "-")
        truth = world_truth_images(prompt, prior)
        found = [("truth", truth)]
        for cfg in [float(c) for c in args.cfgs.split(",")]:
            images = sample(prior, [prompt] * args.n, cfg=cfg, seed=args.seed)
            found.append((f"samples@{cfg:g}", prior.encode_images(images)))
        for pattern in args.runs:
            run = Path(pattern.format(slug=slug))
            found.append((str(run), prior.encode_images(picture(run / "image.png"))))
        for source, z in found:
            row = summary(prompt, source, realism_each(prior, z, prompt))
            print(json.dumps(row), flush=True)
            rows.append(row)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(json.dumps(row) + "\n")
    return rows


if __name__ == "__main__":
    main()
