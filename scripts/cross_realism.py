"""One yardstick for 2D results made on different priors: the realism (denoising loss under the prompt) that one
prior, by default the shipped pixel prior, gives each result image. A latent prior's own realism is measured in
its latent space and does not compare with a pixel prior's; this does.

    python scripts/cross_realism.py runs/gap2d-v3/results.csv runs/gap2d-latent/results.csv [--prior FOLDER] [--seeds 0]
        [--grid OUT.png --grid-entries sds@7.5,lods-embedding@1000 --grid-prompts "a cube,a blue torus"]

Reads each finished 2D run's image.png (the `run_dir` column) and prints, per results file and grid entry, the mean
yardstick realism over ambiguous and specified prompts, and the entry's ratio to SDS at 7.5 of the same file.
--grid: a picture, a row per prompt, a column per results file × entry (in that order), of the first seed given.
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results", nargs="+", type=Path)
    ap.add_argument("--prior", default=None, help="the yardstick prior folder (default: the shipped prior)")
    ap.add_argument("--seeds", default="0", help="comma-separated seeds to include")
    ap.add_argument("--baseline", default="sds@7.5")
    ap.add_argument("--grid", type=Path, default=None)
    ap.add_argument("--grid-entries", default="sds@7.5,lods-embedding@1000,lods-lora@1000")
    ap.add_argument("--grid-prompts", default="")
    args = ap.parse_args()

    import imageio.v3 as iio

    from lods.evaluate.set_metrics import realism
    from lods.priors.prior import Prior

    prior = Prior.load(args.prior)
    seeds = {int(s) for s in args.seeds.split(",")}
    images: dict[tuple, np.ndarray] = {}
    print("| results | entry | ambiguous: yardstick realism ↓ | specified | all: × baseline |")
    print("|---|---|---|---|---|")
    for path in args.results:
        scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for row in csv.DictReader(path.open()):
            if row["dims"] != "2d" or row["status"].startswith(("failed", "not run")) or int(row["seed"]) not in seeds:
                continue
            pixels = iio.imread(Path(row["run_dir"]) / "image.png")[..., :3]
            images.setdefault((str(path), row["method"], row["prompt"]), pixels)
            rgb = torch.from_numpy(pixels.copy()).permute(2, 0, 1)
            value = realism(prior, rgb[None].float() / 255.0, row["prompt"])
            scores[row["method"]][row["kind"]].append(value)
        base = np.mean(sum(scores[args.baseline].values(), [])) if args.baseline in scores else float("nan")
        for entry, kinds in scores.items():
            every = sum(kinds.values(), [])
            mean = lambda v: f"{np.mean(v):.3f}" if v else "–"
            print(f"| {path} | {entry} | {mean(kinds['ambiguous'])} | {mean(kinds['specified'])} | {np.mean(every) / base:.1f} |")

    if args.grid is not None:
        entries = args.grid_entries.split(",")
        rows = [np.concatenate([images[(str(path), e, prompt)] for path in args.results for e in entries], axis=1)
                for prompt in args.grid_prompts.split(",")]
        iio.imwrite(args.grid, np.concatenate(rows, axis=0).repeat(3, 0).repeat(3, 1))
        print(f"wrote {args.grid}")


if __name__ == "__main__":
    main()
