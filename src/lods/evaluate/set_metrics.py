"""Metrics for prompts with many right answers: the truth of a prompt is the set of its completions.

"a cube" allows 8 cubes; a fully specified prompt has a set of one. For a result's views (rgb over white, alpha):
- best of set: the completion whose canonical render has the best mean PSNR over the views is the result's
  `nearest_completion`; PSNR, SSIM, IoU and the signed saturation error are measured against it;
- judge confidence: per view, the judge's probability of the prompt's colour (shape) where the prompt names it,
  of its most probable colour (shape) where the prompt leaves it open, averaged over the objects (one, or two)
  and then over the views. An averaged, greyish colour scores low: "confidently nothing". `judge_confidence`
  is the product of the colour and the shape confidence;
- realism: the prior's own ε-MSE on the renders under the prompt, over a fixed grid of t and fixed noise
  (deterministic; lower is more like the prior's training images);
- diversity, over seeds: the number of distinct nearest completions reached, and that over min(seeds, |set|).
Pure functions on tensors, the judge and the prior; nothing here runs an optimisation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import UserError
from ..render.cameras import Cameras, evaluation_cameras, view_label
from ..world.captions import ObjectSpec, PromptSpec, parse_spec
from ..world.render import render_scene
from ..world.scene import PromptError, Scene
from .metrics import psnr, saturation_error, silhouette_iou, ssim

MAX_COMPLETIONS = 256  # "an object to the left of an object" has 2256; rendering them all is not an evaluation
REALISM_TIMESTEPS = 10
REALISM_T_RANGE = (0.05, 0.95)  # fractions of the prior's training timesteps
CLEAN_T_RANGE = (0.0, 1.0)  # the learned branch trains on t ~ U{0..999}: its reference covers the whole range
CLEAN_TIMESTEPS = 20
FOREGROUND_THRESHOLD = 0.2  # 2D results have no alpha: a pixel this far from white (any channel) is foreground


# ---------------------------------------------------------------------------------------------- the set
def prompt_spec(prompt: str) -> PromptSpec:
    """What a world prompt fixes, in the judge's order ("b to the right of a" read as "a to the left of b").
    The view suffix is dropped. UserError if the prompt is not a caption of the world."""
    try:
        spec, _ = parse_spec(prompt)
    except PromptError as e:
        raise UserError(f"{e}; ground-truth metrics read only captions of the world, e.g. 'a red cube', 'a cube' "
                        "or 'a cube to the left of a blue sphere'") from None
    if spec.relation == "to the right of":
        spec = PromptSpec((spec.objects[1], spec.objects[0]), spec.context, "to the left of")
    return spec


def completion_scenes(spec: PromptSpec) -> list[Scene]:
    scenes = spec.completions()
    if len(scenes) > MAX_COMPLETIONS:
        raise UserError(f"“{spec.caption()}” has {len(scenes)} completions; the set metrics render at most "
                        f"{MAX_COMPLETIONS} (name more attributes)")
    return scenes


@dataclass(frozen=True)
class TruthSet:
    """The canonical renders of a prompt's completions: rgb (K, V, 3, H, W), alpha (K, V, 1, H, W)."""

    captions: tuple[str, ...]
    rgb: torch.Tensor
    alpha: torch.Tensor

    def __len__(self) -> int:
        return len(self.captions)


def _camera_key(cameras: Cameras) -> tuple:
    return tuple(round(float(x), 6) for x in torch.cat([cameras.c2w.flatten(), cameras.fov_deg.flatten()]).tolist())


_TRUTH_CACHE: dict[tuple, TruthSet] = {}
_TRUTH_CACHE_SIZE = 32


def truth_set(spec: PromptSpec, cameras: Cameras, size: int) -> TruthSet:
    """Every completion of `spec` rendered canonically at `cameras` (cached per process: benchmarks score many
    results of one prompt)."""
    cameras = cameras.to("cpu")
    key = (spec.caption(), _camera_key(cameras), size)
    if key not in _TRUTH_CACHE:
        scenes = completion_scenes(spec)
        rgbs, alphas = [], []
        for scene in scenes:
            out = render_scene(scene, cameras, size=size)  # canonical shade and light: the reference
            rgbs.append(out["rgb"].float().cpu())
            alphas.append(out["alpha"].float().cpu())
        if len(_TRUTH_CACHE) >= _TRUTH_CACHE_SIZE:
            _TRUTH_CACHE.pop(next(iter(_TRUTH_CACHE)))
        _TRUTH_CACHE[key] = TruthSet(tuple(s.caption() for s in scenes), torch.stack(rgbs), torch.stack(alphas))
    return _TRUTH_CACHE[key]


def front_camera() -> Cameras:
    """The 2D results' reference view: azimuth 0 (the front) at the evaluation elevation."""
    return evaluation_cameras(1, azimuth_offset_deg=0.0)


# ---------------------------------------------------------------------------------------------- image metrics
def foreground(rgb: torch.Tensor, threshold: float = FOREGROUND_THRESHOLD) -> torch.Tensor:
    """An alpha for results that have none (2D): 1 where some channel is further than `threshold` from white."""
    return ((1.0 - rgb.float()).amax(dim=1, keepdim=True) > threshold).float()


def best_of_set(rgb: torch.Tensor, alpha: torch.Tensor | None, truth: TruthSet) -> dict:
    """Score views (V, 3, H, W) against the nearest completion (best mean PSNR over the views; the first on a tie).

    Returns nearest_index, nearest_completion, n_completions, set_psnr (mean PSNR against each completion) and
    per view (V,) tensors psnr, ssim, iou, saturation_error against the nearest one. Without `alpha` (a 2D
    result) the foreground is estimated (`foreground`) and iou is not measured.
    """
    rgb = rgb.detach().float().cpu()
    if truth.rgb.shape[1:] != rgb.shape:
        raise ValueError(f"views {tuple(rgb.shape)} do not match the truth's {tuple(truth.rgb.shape[1:])}")
    set_psnr = torch.stack([psnr(rgb, t).mean() for t in truth.rgb])
    k = int(set_psnr.argmax())
    rgb_t, alpha_t = truth.rgb[k], truth.alpha[k]
    mask = alpha.detach().float().cpu() if alpha is not None else foreground(rgb)
    per_view = {
        "psnr": psnr(rgb, rgb_t),
        "ssim": ssim(rgb, rgb_t),
        "saturation_error": saturation_error(rgb, rgb_t, mask, alpha_t),
    }
    if alpha is not None:
        per_view["iou"] = silhouette_iou(mask, alpha_t)
    return {"nearest_index": k, "nearest_completion": truth.captions[k], "n_completions": len(truth),
            "set_psnr": set_psnr.tolist(), "per_view": per_view}


# ---------------------------------------------------------------------------------------------- the judge
def _object_heads(spec: PromptSpec) -> list[tuple[ObjectSpec, str, str]]:
    heads = [(spec.objects[0], "shape1", "color1")]
    if len(spec.objects) == 2:
        heads.append((spec.objects[1], "shape2", "color2"))
    return heads


@torch.no_grad()
def judge_confidence(judge, rgb: torch.Tensor, spec: PromptSpec) -> dict:
    """The judge's confidence in the result's colour and shape, per view (V,) and as means over the views.

    Per object: the probability of the named class, or the top probability where the prompt leaves it open;
    objects averaged. `spec` in the judge's order (see `prompt_spec`)."""
    from ..world.judge import HEAD_CLASSES

    probs = {k: v.float().cpu() for k, v in judge.predict(rgb).items()}
    color, shape = [], []
    for obj, shape_head, color_head in _object_heads(spec):
        for value, head, out in ((obj.color, color_head, color), (obj.shape, shape_head, shape)):
            p = probs[head]
            out.append(p[:, HEAD_CLASSES[head].index(value)] if value else p.amax(dim=1))
    per_view = {"judge_color_confidence": torch.stack(color).mean(0), "judge_shape_confidence": torch.stack(shape).mean(0)}
    per_view["judge_confidence"] = per_view["judge_color_confidence"] * per_view["judge_shape_confidence"]
    return {"per_view": per_view} | {k: v.mean().item() for k, v in per_view.items()}


# ---------------------------------------------------------------------------------------------- the prior
@torch.no_grad()
def prior_denoising_loss(prior, z: torch.Tensor, prompt: str | list[str], seed: int = 0,
                         n_timesteps: int = REALISM_TIMESTEPS, t_range: tuple[float, float] = REALISM_T_RANGE) -> float:
    """The prior's own ε-MSE on `z` (model space) under the prompt (one, or one per sample), averaged over a fixed
    grid of `n_timesteps` t in `t_range` (fractions of the training timesteps) and fixed noise (`seed`)."""
    prompts = [prompt] if isinstance(prompt, str) else list(prompt)
    if len(prompts) not in (1, z.shape[0]):
        raise ValueError(f"{len(prompts)} prompts for {z.shape[0]} samples")
    g = torch.Generator().manual_seed(seed)
    cond = prior.encode_text(prompts)
    cond = cond.expand(z.shape[0], -1, -1) if len(prompts) == 1 else cond
    total = 0.0
    ts = torch.linspace(t_range[0], t_range[1], n_timesteps) * (prior.num_train_timesteps - 1)
    for t_value in ts.round().long().tolist():
        noise = torch.randn(z.shape, generator=g).to(z.device)
        t = torch.full((z.shape[0],), t_value, device=z.device, dtype=torch.long)
        pred = prior.predict_noise(prior.add_noise(z, noise, t), t, cond)
        total += float(((pred - noise) ** 2).mean())
    return total / n_timesteps


def view_prompts(prompt: str, cameras: Cameras | None, n: int) -> list[str]:
    """The prompt with each camera's view suffix (as view-dependent prompting feeds the prior); without
    cameras (2D), the plain prompt."""
    base = prompt.split(",")[0].strip()
    if cameras is None:
        return [base] * n
    return [f"{base}, {view_label(e, a)} view" for e, a in zip(cameras.elevation_deg.tolist(), cameras.azimuth_deg.tolist())]


def prior_reads(prior, prompts: list[str]) -> bool:
    """Whether the prior's vocabulary holds every word of the prompts (an older prior may not know "object")."""
    try:
        for p in dict.fromkeys(prompts):
            prior.check_prompt(p, allow_empty=True)
    except ValueError:
        return False
    return True


def realism(prior, rgb: torch.Tensor, prompt: str, cameras: Cameras | None = None) -> float | None:
    """The prior's denoising loss on the views (rgb over white in [0, 1]) under the prompt, with view suffixes
    when `cameras` are given; None when the prior cannot read the prompt."""
    prompts = view_prompts(prompt, cameras, rgb.shape[0])
    if not prior_reads(prior, prompts):
        return None
    return prior_denoising_loss(prior, prior.encode_images(rgb.float()), prompts)


def clean_loss(prior, rgb: torch.Tensor, negative_prompt: str = "") -> float:
    """The prior's denoising loss on clean images under the negative prompt, t over the whole range: the level a
    learned branch (LODS, VSD), trained with that loss on the renders, can hope to reach."""
    z = prior.encode_images(rgb.float())
    return prior_denoising_loss(prior, z, negative_prompt, n_timesteps=CLEAN_TIMESTEPS, t_range=CLEAN_T_RANGE)


# ---------------------------------------------------------------------------------------------- seeds
def average_completion(truth: TruthSet) -> tuple[str, float]:
    """The completion nearest the pixel average of the set's renders, and its mean PSNR (dB) to that average.
    Where it is high (colourless prompts: ≳ 25 dB, the gray completion), a result at this completion cannot be
    told from an averaged one by any image metric; only how often runs land there can (scripts/gap_tables.py)."""
    mean = truth.rgb.mean(0)
    scores = torch.stack([psnr(mean, rgb).mean() for rgb in truth.rgb])
    k = int(scores.argmax())
    return truth.captions[k], float(scores[k])


def diversity(nearest: list[str], n_completions: int) -> dict:
    """Over the seeds of one prompt and method: how many distinct completions they reach, and that over
    min(seeds, |set|) (1: as diverse as the seeds allow)."""
    if not nearest or n_completions < 1:
        raise ValueError("diversity needs at least one result and one completion")
    distinct = len(set(nearest))
    return {"diversity": distinct, "diversity_frac": distinct / min(len(nearest), n_completions)}


__all__ = ["MAX_COMPLETIONS", "TruthSet", "average_completion", "best_of_set", "clean_loss", "completion_scenes",
           "diversity", "foreground", "front_camera", "judge_confidence", "prior_denoising_loss", "prior_reads",
           "prompt_spec", "realism", "truth_set", "view_prompts"]
