"""How well a prior draws what it is asked: a grid of its samples, and for a world prior the judge on its samples,
per CFG scale."""

from __future__ import annotations

import random
from pathlib import Path

import torch

from ..world.scene import Scene, WorldObject, all_single_scenes, random_scene
from ..world.shapes import COLORS, CONTEXTS


def prior_eval_prompts(per_category: dict[str, int] | None = None, seed: int = 0) -> list[str]:
    """All single-object captions, plus a fixed sample of surroundings and two-object captions."""
    per_category = per_category or {"surroundings": 12, "multi": 12}
    rng = random.Random(seed)
    prompts = [s.caption() for s in all_single_scenes()]
    surroundings = [Scene((s.objects[0],), context=c).caption() for s in all_single_scenes() for c in CONTEXTS]
    prompts += rng.sample(surroundings, per_category.get("surroundings", 0))
    multi: list[str] = []
    while len(multi) < per_category.get("multi", 0):
        scene = random_scene(rng, weights=(0, 0, 1))
        if scene.caption() not in multi:
            multi.append(scene.caption())
    return prompts + multi


@torch.no_grad()
def evaluate_prior(prior, judge, scales=(5.0, 1.0), n_per_prompt: int = 2, steps: int = 25, seed: int = 0, prompts=None) -> dict:
    """Fraction of samples in which the judge recognises every attribute of the prompt, per category and scale,
    and the shape and colour of the (first) object alone; also the mean brightness of the border pixels
    (1.0 = the clean white background of every training image)."""
    from ..priors.sampling import sample
    from ..world.judge import parse_world_prompt

    prompts = prompts or prior_eval_prompts()
    results = {}
    for scale in scales:
        flat = [p for p in prompts for _ in range(n_per_prompt)]
        images = torch.cat([sample(prior, flat[i:i + 64], cfg=scale, steps=steps, seed=seed + i) for i in range(0, len(flat), 64)])
        preds = judge.predict(images)
        per_cat: dict[str, list[float]] = {}
        shape_colour = []
        for i, p in enumerate(flat):
            scene = parse_world_prompt(p)
            ok = bool(judge.recognizes(images[i:i + 1], p)[0])
            per_cat.setdefault(scene.category, []).append(float(ok))
            obj = scene.canonical().objects[0] if scene.category == "multi" else scene.objects[0]
            shape_ok = _argmax_name(preds, "shape1", i, obj, "shape")
            colour_ok = _argmax_name(preds, "color1", i, obj, "color")
            if scene.category != "multi":
                shape_colour.append(float(shape_ok and colour_ok))
        border = torch.cat([images[:, :, 0], images[:, :, -1], images[:, :, :, 0], images[:, :, :, -1]], -1)
        results[str(scale)] = {
            "recognized": {k: sum(v) / len(v) for k, v in per_cat.items()},
            "recognized_all": sum(sum(v) for v in per_cat.values()) / len(flat),
            "shape_and_colour_single_object": sum(shape_colour) / max(1, len(shape_colour)),
            "border_brightness": float(border.mean()),
            "samples": len(flat),
        }
    return results


COVERAGE_PROMPTS = ("a cube", "a red object")


@torch.no_grad()
def completion_coverage(prior, judge, prompt: str, n: int = 32, scale: float = 5.0, steps: int = 25, seed: int = 0) -> dict:
    """For a prompt that leaves the first object's colour or shape open ("a cube", "a red object"): `n` samples,
    the judge's reading of that attribute in each, and how many of its values appear (8 colours, 6 shapes), with
    the count of each. Also how often the attribute the prompt names is kept."""
    from ..priors.sampling import sample
    from ..world.captions import parse_spec
    from ..world.shapes import SHAPES

    spec, _ = parse_spec(prompt)
    obj = spec.objects[0]
    if obj.color and obj.shape:
        raise ValueError(f"{prompt!r} names both the colour and the shape: nothing to cover")
    attr, head, names = ("color", "color1", tuple(COLORS)) if obj.color is None else ("shape", "shape1", SHAPES)
    kept_attr, kept_head, kept_names = ("shape", "shape1", SHAPES) if attr == "color" else ("color", "color1", tuple(COLORS))
    images = torch.cat([sample(prior, [prompt] * min(64, n - i), cfg=scale, steps=steps, seed=seed + i) for i in range(0, n, 64)])
    preds = judge.predict(images)
    read = [names[int(i)] for i in preds[head].argmax(1)]
    kept = [kept_names[int(i)] for i in preds[kept_head].argmax(1)]
    counts = {name: read.count(name) for name in names}
    want = getattr(obj, kept_attr)
    return {"prompt": prompt, "cfg": scale, "samples": n, "open": attr, "values": len(names),
            "covered": sum(c > 0 for c in counts.values()), "counts": counts,
            f"kept_{kept_attr}": sum(k == want for k in kept) / n}


def _argmax_name(preds: dict, head: str, i: int, obj: WorldObject, attr: str) -> bool:
    from ..world.shapes import SHAPES

    names = SHAPES if attr == "shape" else tuple(COLORS)
    if head not in preds:
        return False
    return names[int(preds[head][i].argmax())] == getattr(obj, attr)


def sample_grid(prior, prompts: list[str], path: Path, cfg: float = 5.0, n: int = 8, steps: int = 50, seed: int = 0, batch: int = 64) -> torch.Tensor:
    """n samples of each prompt, one row per prompt, saved as a PNG grid."""
    from ..export.images import image_grid, save_image
    from ..priors.sampling import sample

    flat = [p for p in prompts for _ in range(n)]
    images = torch.cat([sample(prior, flat[i:i + batch], cfg, steps, seed + i) for i in range(0, len(flat), batch)])
    save_image(image_grid(images, nrow=n), Path(path))
    return images
