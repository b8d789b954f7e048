"""Score a generated asset against the world's ground truth of its prompt, at the fixed evaluation cameras.

The truth of a prompt is the set of its completions (one for a fully specified prompt; evaluate/set_metrics.py).
Image metrics (PSNR, SSIM, silhouette IoU, saturation error) compare with the nearest completion's true render;
the judge gives the CLIP-like scores: in how many views it recognises the prompt, R@1 among a suite of prompts of the same category,
and the cosine similarity of its features between result and truth.
"""

from __future__ import annotations

import random
from typing import Callable

import torch
import torch.nn.functional as F

from ..render.cameras import Cameras, evaluation_cameras
from ..world.judge import Judge, parse_world_prompt
from ..world.scene import CATEGORIES, RELATIONS, Scene, WorldObject
from ..world.shapes import COLORS, CONTEXTS, SHAPES
from .metrics import saturation

MULTI_SUITE_SIZE = 200


def _objects() -> list[WorldObject]:
    return [WorldObject(s, c) for s in SHAPES for c in COLORS]


def all_prompts(category: str) -> list[str]:
    """Every canonical caption of a category (multi: two different objects, "to the left of" or "on top of")."""
    if category == "single":
        return [Scene((o,)).caption() for o in _objects()]
    if category == "surroundings":
        return [Scene((o,), context=c).caption() for o in _objects() for c in CONTEXTS]
    if category == "multi":
        relations = [r for r in RELATIONS if r != "to the right of"]
        return [Scene((a, b), relation=r).caption() for r in relations for a in _objects() for b in _objects() if a != b]
    raise ValueError(f"unknown category {category!r}; expected one of {CATEGORIES}")


def default_suite(category: str, prompt: str | None = None, size: int = MULTI_SUITE_SIZE, seed: int = 0) -> list[str]:
    """The prompts R@1 ranks against: all singles (48), all surroundings (144), or for multi a fixed sample of
    `size` captions. Given a multi `prompt`, the suite holds it and its hardest rivals first (objects swapped,
    the other relation), then the sample."""
    prompts = all_prompts(category)
    if category != "multi":
        return prompts
    sample = random.Random(seed).sample(prompts, min(size, len(prompts)))
    head: list[str] = []
    if prompt is not None:
        s = parse_world_prompt(prompt)
        if s.category != "multi":
            raise ValueError(f"{prompt!r} is not a two-object prompt")
        a, b = s.objects
        other = "on top of" if s.relation == "to the left of" else "to the left of"
        head = [s.caption(), Scene((b, a), relation=s.relation).caption(), Scene((a, b), relation=other).caption(),
                Scene((b, a), relation=other).caption()]
    suite = list(dict.fromkeys(head + sample))
    return suite[: max(size, len(dict.fromkeys(head)))]


def _check_render(out: dict, n: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    rgb, alpha = out.get("rgb"), out.get("alpha")
    if rgb is None or alpha is None:
        raise ValueError("render_fn must return a dict with 'rgb' and 'alpha'")
    if tuple(rgb.shape) != (n, 3, size, size) or tuple(alpha.shape) != (n, 1, size, size):
        raise ValueError(f"render_fn returned rgb {tuple(rgb.shape)} and alpha {tuple(alpha.shape)}; "
                         f"expected ({n}, 3, {size}, {size}) and ({n}, 1, {size}, {size})")
    return rgb.detach().float().cpu().clamp(0, 1), alpha.detach().float().cpu().clamp(0, 1)


@torch.no_grad()
def evaluate_against_truth(
    render_fn: Callable[[Cameras, int], dict],
    prompt: str,
    suite_prompts: list[str] | None = None,
    n_views: int = 8,
    size: int = 32,
    judge: Judge | None = None,
    prior=None,
) -> dict:
    """Render the result at `evaluation_cameras(n_views)` (rgb over white, alpha) and score it against the truth.

    The truth of a prompt is the set of its completions (evaluate/set_metrics.py): one for a specified prompt,
    8 for "a cube". Image and judge scores compare with the nearest completion (best mean PSNR over the views).
    Returns per-view lists (under "per_view") and their means (top level) of psnr, ssim, iou, saturation_error,
    saturation (the result's own), feature_similarity, judge_log_likelihood and the judge's colour / shape
    confidence (judge_confidence, their product), plus recognized_views (int), r_at_1, the suite size, the
    judge's scores of the nearest completion itself (truth_recognized_views, truth_r_at_1), the ceiling of the
    result's, n_completions, nearest_completion, and realism (the prior's denoising loss on the views; None without a `prior` or when it
    cannot read the prompt). Raises UserError if `prompt` is not a caption of the world.
    """
    from .set_metrics import best_of_set, judge_confidence, prompt_spec, realism, truth_set

    spec = prompt_spec(prompt)  # canonical order; UserError if not a world caption
    judge = judge if judge is not None else Judge.load()
    cameras = evaluation_cameras(n_views)
    rgb, alpha = _check_render(render_fn(cameras, size), n_views, size)
    truths = truth_set(spec, cameras, size)
    best = best_of_set(rgb, alpha, truths)
    k = best["nearest_index"]
    rgb_t = truths.rgb[k]
    caption = truths.captions[k]  # the nearest completion: for a specified prompt, its canonical caption
    scene = parse_world_prompt(caption)
    suite = suite_prompts if suite_prompts is not None else default_suite(
        scene.category, caption if scene.category == "multi" else None)
    confidence = judge_confidence(judge, rgb, spec)

    per_view = {
        **best["per_view"],
        "saturation": saturation(rgb, alpha),
        "feature_similarity": F.cosine_similarity(judge.features(rgb), judge.features(rgb_t), dim=1).cpu(),
        "judge_log_likelihood": judge.prompt_log_likelihood(rgb, [caption])[:, 0].cpu(),
        **confidence["per_view"],
    }
    recognized = judge.recognizes(rgb, caption).cpu()
    result = {
        "prompt": prompt,
        "caption": spec.caption(),
        "category": scene.category,
        "specified": spec.specified,
        "n_completions": best["n_completions"],
        "nearest_completion": caption,
        "n_views": n_views,
        "size": size,
        "azimuth_deg": cameras.azimuth_deg.tolist(),
        "per_view": {k: v.tolist() for k, v in per_view.items()} | {"recognized": recognized.tolist()},
    }
    result |= {k: v.mean().item() for k, v in per_view.items()}
    result["recognized_views"] = int(recognized.sum())
    result["r_at_1"] = judge.r_at_1(rgb, caption, suite)
    # the same judge scores on the truth itself: the ceiling (in side views one of two objects hides behind the other)
    result["truth_recognized_views"] = int(judge.recognizes(rgb_t, caption).sum())
    result["truth_r_at_1"] = judge.r_at_1(rgb_t, caption, suite)
    result["suite_size"] = len(dict.fromkeys([caption] + [parse_world_prompt(p).caption() for p in suite]))
    result["realism"] = realism(prior, rgb, prompt, cameras) if prior is not None else None
    return result
