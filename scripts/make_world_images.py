"""World renders for the image-to-3D evaluation: RGBA PNGs of N captions per category, from the front reference camera.

    python scripts/make_world_images.py --out runs/world_images --per-category 5 --size 64

Writes OUT/<category>-<i>.png (RGBA: the world renderer's colour over white, its alpha) and OUT/index.json
([{"file", "caption", "category"}]). Captions are drawn without replacement from every canonical caption of the
category with `random.Random(seed)`, so the same arguments give the same images.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

import torch
from PIL import Image

from lods.evaluate.world_eval import all_prompts
from lods.pipelines.image_to_3d import reference_cameras
from lods.utils.io import atomic_write_json
from lods.world.render import render_scene
from lods.world.scene import CATEGORIES, parse_prompt


def make_world_images(out: str | Path, per_category: int = 5, size: int = 64, seed: int = 0,
                      categories=CATEGORIES) -> list[dict]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    cam = reference_cameras()
    for category in categories:
        captions = random.Random(f"{seed}-{category}").sample(all_prompts(category), per_category)
        for i, caption in enumerate(captions):
            scene, _ = parse_prompt(caption)
            r = render_scene(scene, cam, size=size)
            rgb, alpha = r["rgb"][0], r["alpha"][0]
            # straight colour: the renderer's rgb is composited over white
            a = alpha.clamp(min=1e-4)
            straight = torch.where(alpha > 1e-4, ((rgb - (1 - alpha)) / a).clamp(0, 1), torch.ones_like(rgb))
            rgba = torch.cat([straight, alpha], 0)
            name = f"{category}-{i}.png"
            Image.fromarray((rgba * 255).round().clamp(0, 255).byte().permute(1, 2, 0).numpy(), "RGBA").save(out / name)
            rows.append({"file": name, "caption": caption, "category": category})
    atomic_write_json(out / "index.json", rows)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/world_images")
    ap.add_argument("--per-category", type=int, default=5)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    rows = make_world_images(args.out, args.per_category, args.size, args.seed)
    print(f"wrote {len(rows)} images to {args.out}")


if __name__ == "__main__":
    main()
