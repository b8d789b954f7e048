"""Image-to-3D: one image is the reference view of the scene; the rest comes from the 2D prior (Magic123-like).

The optimisation loop (pipelines/loop.py) with `ImageHooks`: every step renders the fixed reference camera
(elevation 0, azimuth 0, distance 2.5, fov 40, the world's front view) next to the random novel views; the reference
render is pulled to the image by `loss_rgb` (MSE of RGB over white) and `loss_mask` (MSE of alpha against the
object mask), and the novel views get the guidance (`--guidance none`: reconstruction only, the baseline). The
image is prepared by pipelines/reference_image.py.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..render.cameras import Cameras, evaluation_cameras, orbit_cameras
from .loop import LoopHooks, background_colors, run_loop, scene_render_fn
from .presets import image_preset_config
from .reference_image import prepare_reference, read_reference, reference_targets, save_reference
from .run_config import NO_GUIDANCE, ImageTo3DConfig, load_run_config

__all__ = ["ImageHooks", "ImageTo3DConfig", "NoGuidance", "image_metrics", "image_preset_config", "judge_caption",
           "load_image_run_config", "reference_cameras", "run_image_to_3d"]

REFERENCE_CAMERA = {"elevation_deg": 0.0, "azimuth_deg": 0.0, "distance": 2.5, "fov_deg": 40.0}
REFERENCE_NAME = "reference.png"


def reference_cameras() -> Cameras:
    c = REFERENCE_CAMERA
    return orbit_cameras(c["elevation_deg"], c["azimuth_deg"], c["distance"], c["fov_deg"])


def _cat_cameras(a: Cameras, b: Cameras) -> Cameras:
    return Cameras(*(torch.cat([getattr(a, f), getattr(b, f).to(getattr(a, f).device)])
                     for f in ("c2w", "fov_deg", "elevation_deg", "azimuth_deg", "distance")))


# ------------------------------------------------------------------------------------------------ naming
def judge_caption(images01: torch.Tensor, judge=None) -> str:
    """The world caption the judge reads in one image (1, 3, H, W) over white: the argmax of every head."""
    from ..world.judge import HEAD_CLASSES, Judge
    from ..world.scene import Scene, WorldObject
    from ..world.shapes import CONTEXTS

    judge = judge if judge is not None else Judge.load()
    p = {k: v[0] for k, v in judge.predict(images01).items()}

    def pick(head):
        return HEAD_CLASSES[head][int(p[head].argmax())]

    category = pick("category")
    a = WorldObject(pick("shape1"), pick("color1"))
    if category == "surroundings":
        ctx = p["context"][1:]  # the category says there is one: best of the real contexts
        return Scene((a,), context=CONTEXTS[int(ctx.argmax())]).caption()
    if category == "multi":
        return Scene((a, WorldObject(pick("shape2"), pick("color2"))), relation=pick("relation")).caption()
    return Scene((a,)).caption()


def _is_world_prior(prior: str | None) -> bool:
    """The embedded prior (or a prior folder with a closed world vocabulary), read without loading it."""
    import json

    if prior is None:
        return True
    meta = Path(prior) / "lods_prior.json"
    try:
        return bool(json.loads(meta.read_text()).get("vocabulary")) if meta.exists() else False
    except (OSError, ValueError):
        return False


# ------------------------------------------------------------------------------------------------ the loop
class NoGuidance(torch.nn.Module):
    """`--guidance none`: no prior term, nothing learnable (the reconstruction-only baseline)."""

    name = NO_GUIDANCE

    def forward(self, images01, cameras=None, step: int = 0) -> dict:
        return {}

    def param_groups(self) -> list[dict]:
        return []


class ImageHooks(LoopHooks):
    """The reference view next to the novel views; its reconstruction terms; the image metrics."""

    def __init__(self, rgba: np.ndarray):
        self.rgba = rgba
        self._targets: dict = {}

    def build_guidance(self, cfg, prior):
        return NoGuidance() if cfg.guidance == NO_GUIDANCE else super().build_guidance(cfg, prior)

    def start(self, cfg, out: Path, resume: bool) -> None:
        if not resume or not (out / REFERENCE_NAME).exists():
            save_reference(self.rgba, out / REFERENCE_NAME)

    def targets(self, size: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        if size not in self._targets:
            rgb, a = reference_targets(self.rgba)
            if rgb.shape[-1] != size:
                rgb = F.interpolate(rgb, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
                a = F.interpolate(a, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
            self._targets[size] = (rgb.to(device), a.to(device))
        return self._targets[size]

    def step(self, cfg, scene, guidance, cams, size: int, step: int):
        device = cams.c2w.device
        ref = reference_cameras().to(device)
        white = torch.ones(1, 3, device=device)
        guided = not isinstance(guidance, NoGuidance)
        if guided:
            rendered = scene.render(_cat_cameras(ref, cams), size,
                                    background=torch.cat([white, background_colors(cfg, len(cams), device)]))
            losses = guidance(rendered["rgb"][1:], cams, step)
        else:  # the novel cameras were still drawn, so the random stream is the same as a guided run's
            rendered, losses = scene.render(ref, size, background=white), {}
        t_rgb, t_alpha = self.targets(size, device)
        losses["loss_rgb"] = F.mse_loss(rendered["rgb"][:1], t_rgb)
        losses["loss_mask"] = F.mse_loss(rendered["alpha"][:1], t_alpha)
        return rendered, losses

    def metrics(self, cfg, scene, prior) -> dict:
        return {"image_to_3d": image_metrics(cfg, scene, self.rgba)}


def image_metrics(cfg, scene, rgba: np.ndarray, judge=None) -> dict:
    """Reference-view PSNR / SSIM / IoU, and the judge's feature similarity between the reference and novel views."""
    from ..evaluate.metrics import psnr, silhouette_iou, ssim

    render = scene_render_fn(scene)
    size = rgba.shape[0]
    t_rgb, t_alpha = reference_targets(rgba)
    r = render(reference_cameras(), size)
    out = {
        "image": cfg.image,
        "prompt": cfg.prompt,
        "prompt_source": cfg.prompt_source,
        "preprocess": cfg.preprocess,
        "reference_view": {
            "psnr": float(psnr(r["rgb"].clamp(0, 1), t_rgb)[0]),
            "ssim": float(ssim(r["rgb"].clamp(0, 1), t_rgb)[0]),
            "iou": float(silhouette_iou(r["alpha"], t_alpha)[0]),
        },
    }
    try:
        from ..world.judge import Judge

        judge = judge if judge is not None else Judge.load()
    except UserError as e:  # no judge shipped: the image metrics alone
        out["judge_error"] = str(e)
        return out
    cams = evaluation_cameras(cfg.export.eval_views)
    novel = render(cams, 32)["rgb"].clamp(0, 1)
    f_ref = judge.features(t_rgb)
    per_view = F.cosine_similarity(judge.features(novel), f_ref.expand(len(cams), -1), dim=1).cpu()
    out["judge_feature_similarity"] = float(per_view.mean())
    out["judge_feature_similarity_per_view"] = per_view.tolist()
    out["judge_feature_similarity_reference_view"] = float(
        F.cosine_similarity(judge.features(r["rgb"].clamp(0, 1)), f_ref, dim=1)[0])
    out["eval_azimuth_deg"] = cams.azimuth_deg.tolist()
    return out


def run_image_to_3d(cfg: ImageTo3DConfig, resume: bool = False, progress=None) -> dict:
    """Reconstruct `cfg.image` into a 3D scene in `cfg.out`; every input is checked before anything is written."""
    out = Path(cfg.out)
    if resume:
        rgba = read_reference(out / REFERENCE_NAME)
    else:
        named = bool(cfg.prompt)  # "" (no --prompt): the judge names the object below
        # cheap checks first (a bad option must not wait for the image); a stand-in prompt until the judge's
        dataclasses.replace(cfg, prompt=cfg.prompt if named else "a red cube").validate()
        rgba, info = prepare_reference(cfg.image, cfg.render_size, cfg.background_tolerance)
        cfg.preprocess = info
        if named:
            cfg.prompt_source = "user"
        elif not _is_world_prior(cfg.prior):
            raise UserError("--prompt is required with this prior: only the embedded world prior can have the object "
                            "named by the world's classifier")
        else:
            cfg.prompt = judge_caption(reference_targets(rgba)[0])
            cfg.prompt_source = "judge"
    return run_loop(cfg, ImageHooks(rgba), resume=resume, progress=progress)


def load_image_run_config(out: Path) -> ImageTo3DConfig:
    cfg = load_run_config(out)
    if not isinstance(cfg, ImageTo3DConfig):
        raise UserError(f"{out} holds a text-to-3D run, not an image-to-3D one; resume it with `lods generate --resume`")
    return cfg
