"""Image-to-3D: one image is the reference view of the scene; the rest comes from the 2D prior (Magic123-like).

A thin layer over `generate.run_generate` (same config, scene building, checkpoints, exact resume, exports), through
its `LoopHooks`: every step renders the fixed reference camera (elevation 0, azimuth 0, distance 2.5, fov 40, the
world's front view) next to the random novel views; the reference render is pulled to the image by
`loss_rgb` (MSE of RGB over white) and `loss_mask` (MSE of alpha against the object mask), and the novel views get
the guidance (`--guidance none`: reconstruction only, the baseline).

Preparing the image (`prepare_reference`), the documented rule:
1. The object mask. An RGBA image with any pixel alpha < 1 uses its alpha. Otherwise (RGB, or opaque RGBA) the
   background is removed: the background colour is the per-channel median of the 1-pixel image border; a pixel is
   background-coloured when every channel lies within `background_tolerance` (0.1 of the [0, 1] range) of it; the
   background is the background-coloured pixels 4-connected to the border (so background-coloured highlights inside
   the object stay); of what remains, the largest 8-connected component is the object, together with any other
   component at least `SPECK_FRACTION` (25%) of its area (so two separate objects both stay; specks go).
2. Framing. The image is padded to a square. If the object's box is already framed like a world object in a front
   render (its longer side spans `FILL_RANGE` = 35%..100% of the image and its centre lies within
   `MAX_CENTER_OFFSET` = 15% of the image side of the centre, which holds for every world render), the framing is
   kept, so a world render stays aligned with its 3D truth. Otherwise the object is recentred (box centre to image
   centre) and rescaled so that its longer side spans `FILL_TARGET` = 60% of the image (a single world object's
   typical fill).
3. The result is resampled (antialiased, premultiplied alpha) to the render size and quantised to 8 bits; that
   RGBA image is `reference.png` in the run folder and is exactly what the loop fits (a resumed run reads it back).
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..guidance import guidance_class
from ..render.cameras import Cameras, evaluation_cameras, orbit_cameras
from ..utils.io import atomic_write_bytes
from .generate import GUIDANCES, GenerateConfig, LoopHooks, _background, load_run_config, preset_config, run_generate

REFERENCE_CAMERA = {"elevation_deg": 0.0, "azimuth_deg": 0.0, "distance": 2.5, "fov_deg": 40.0}
MIN_SIDE = 16  # pixels: smaller images are refused
MAX_PIXELS = 64 * 10**6  # larger images are refused before decoding (Pillow's bomb limit is ~179 M)
BACKGROUND_TOLERANCE = 0.1
SPECK_FRACTION = 0.25
FILL_RANGE = (0.35, 1.0)
MAX_CENTER_OFFSET = 0.15
FILL_TARGET = 0.6
MIN_OBJECT_PIXELS = 4
REFERENCE_NAME = "reference.png"
IMAGE_GUIDANCES = tuple(GUIDANCES) + ("none",)
# Reconstruction weights. The MSEs are means over pixels while the distillation losses are sums, hence the large
# lambdas: at initialisation the reference-view gradient is a few times the guidance's (SDS at the fast preset).
RECON_LAMBDAS = {"rgb": 10000.0, "mask": 1000.0}
# Methods whose gradient is a plain score difference (Guidance.difference_gradient: eps_y - eps_learned or
# eps_y - eps_null, i.e. LODS, normalised by s, and CSD) get lambda_sds = SDS's CFG scale of the preset, so that every
# guidance starts at SDS's gradient magnitude against the reconstruction (measured at initialisation: LODS's
# gradient is ~1/19 of SDS's at CFG 20).
SDS_CFG = {"fast": 20.0, "paper": 100.0}

@dataclass
class ImageTo3DConfig(GenerateConfig):
    task: str = "image-to-3d"
    image: str = ""  # the input image, as given
    prompt_source: str = "user"  # "user" (--prompt) or "judge" (the world's classifier named the object)
    background_tolerance: float = BACKGROUND_TOLERANCE
    preprocess: dict = field(default_factory=dict)  # what prepare_reference did (filled in by run_image_to_3d)

    def validate(self) -> None:
        if self.guidance not in IMAGE_GUIDANCES:
            raise UserError(f"unknown guidance {self.guidance!r}; choose one of: {', '.join(IMAGE_GUIDANCES)}")
        # the text-to-3D checks; "none" stands in for a guidance there
        GenerateConfig.validate(dataclasses.replace(self, guidance="sds") if self.guidance == "none" else self)
        if not 0.0 <= self.background_tolerance < 1.0:
            raise UserError("background_tolerance must lie in [0, 1)")
        for k in ("rgb", "mask"):
            if not float(self.lambdas.get(k, 0.0)) >= 0.0:
                raise UserError(f"lambda {k} must be non-negative")


def image_preset_config(preset: str, backbone: str, guidance: str) -> ImageTo3DConfig:
    """generate's preset plus the reference view. `paper`: CFG 100 for every guidance and LODS-embedding lr 1e-3
    (the paper's image-to-3D settings); `fast` (CPU, embedded prior): the text-to-3D CFG scales (SDS 20, LODS 100),
    LODS-embedding lr 1e-3, 2 novel views a step (the reference view is the third), 300 steps for gs."""
    base = preset_config(preset, backbone, "sds" if guidance == "none" else guidance)
    cfg = ImageTo3DConfig(**{f.name: getattr(base, f.name) for f in dataclasses.fields(GenerateConfig)})
    cfg.guidance = guidance
    cfg.lambdas = {**base.lambdas, **RECON_LAMBDAS}
    if guidance != "none" and guidance_class(guidance).difference_gradient:
        cfg.lambdas["sds"] = SDS_CFG[preset]
    cfg.guidance_config.embedding_lr = 1e-3
    if preset == "paper":
        cfg.guidance_config.guidance_scale = 100.0
    else:
        cfg.cameras.views_per_step = 2
        if backbone == "gs":
            cfg.steps = 300
    return cfg


# ------------------------------------------------------------------------------------------------ the image
def load_image(path: str | Path) -> tuple[np.ndarray, np.ndarray | None]:
    """(H, W, 3) float RGB in [0, 1] and the (H, W) alpha, or None when the image has no transparency."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.exists():
        raise UserError(f"no such image: {path}")
    if not path.is_file():
        raise UserError(f"{path} is not an image file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit below is the rule
            im = Image.open(path)
        with im:
            w, h = im.size
            if w * h > MAX_PIXELS:
                raise UserError(f"{path} is {w}x{h} pixels: too large (at most {MAX_PIXELS // 10**6} megapixels); "
                                "downscale it first")
            im.load()
            has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
            arr = np.asarray(im.convert("RGBA" if has_alpha else "RGB"), dtype=np.float32) / 255.0
    except UserError:
        raise
    except Image.DecompressionBombError:
        raise UserError(f"{path} is too large to decode safely (at most {MAX_PIXELS // 10**6} megapixels); "
                        "downscale it first") from None
    except UnidentifiedImageError:
        raise UserError(f"{path} is not an image this program can read (PNG, JPEG, WebP, ...)") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise UserError(f"{path} could not be read as an image: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
    h, w = arr.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise UserError(f"{path} is {w}x{h} pixels: too small; give an image at least {MIN_SIDE} pixels on a side")
    rgb = arr[..., :3]
    alpha = arr[..., 3] if has_alpha else None
    if alpha is not None and alpha.min() >= 1.0:
        alpha = None  # opaque RGBA: treat as RGB
    return rgb, alpha


def remove_background(rgb: np.ndarray, tolerance: float = BACKGROUND_TOLERANCE) -> tuple[np.ndarray, dict]:
    """The object mask (H, W) bool of an RGB image by the border-colour rule (see the module docstring)."""
    from scipy import ndimage

    border = np.concatenate([rgb[0], rgb[-1], rgb[1:-1, 0], rgb[1:-1, -1]], 0)
    colour = np.median(border, axis=0)
    close = np.abs(rgb - colour).max(-1) <= tolerance
    labels, _ = ndimage.label(close)  # 4-connected
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    background = np.isin(labels, edge[edge > 0])
    mask = keep_main_components(~background)
    return mask, {"background_colour": [round(float(c), 4) for c in colour], "tolerance": tolerance}


def keep_main_components(mask: np.ndarray, fraction: float = SPECK_FRACTION) -> np.ndarray:
    """The largest 8-connected component of `mask`, with every other component of at least `fraction` of its area."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3), dtype=bool))
    if n == 0:
        return np.zeros_like(mask, dtype=bool)
    areas = np.bincount(labels.ravel())[1:]
    keep = np.flatnonzero(areas >= fraction * areas.max()) + 1
    return np.isin(labels, keep)


def frame_object(rgb: np.ndarray, alpha: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict]:
    """Pad to a square; keep a world-like framing or recentre and rescale the object (see the module docstring).
    Returns the square straight-alpha RGB, the alpha and what was done."""
    h, w = alpha.shape
    side = max(h, w)
    y_off, x_off = (side - h) // 2, (side - w) // 2
    ys, xs = np.nonzero(alpha > 0.5)
    y0, y1, x0, x1 = ys.min() + y_off, ys.max() + 1 + y_off, xs.min() + x_off, xs.max() + 1 + x_off
    extent = max(y1 - y0, x1 - x0) / side
    cy, cx = (y0 + y1) / 2, (x0 + x1) / 2
    offset = max(abs(cy / side - 0.5), abs(cx / side - 0.5))
    keep = FILL_RANGE[0] <= extent <= FILL_RANGE[1] and offset <= MAX_CENTER_OFFSET
    if keep:
        win, top, left = side, -y_off, -x_off  # the padded square itself
    else:
        win = max(int(round(extent * side / FILL_TARGET)), 1)
        top = int(round(cy - win / 2)) - y_off
        left = int(round(cx - win / 2)) - x_off
    out_rgb = np.ones((win, win, 3), dtype=np.float32)
    out_a = np.zeros((win, win), dtype=np.float32)
    sy0, sx0 = max(top, 0), max(left, 0)
    sy1, sx1 = min(top + win, h), min(left + win, w)
    if sy1 > sy0 and sx1 > sx0:
        out_rgb[sy0 - top: sy1 - top, sx0 - left: sx1 - left] = rgb[sy0:sy1, sx0:sx1]
        out_a[sy0 - top: sy1 - top, sx0 - left: sx1 - left] = alpha[sy0:sy1, sx0:sx1]
    info = {"object_extent": round(float(extent), 4), "center_offset": round(float(offset), 4), "refit": not keep,
            "scale": round(float(side / win), 4)}
    return out_rgb, out_a, info


def resample_rgba(rgb: np.ndarray, alpha: np.ndarray, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Antialiased resize with premultiplied alpha: (3, size, size) straight RGB (white where alpha is 0), (1, size, size)."""
    a = torch.from_numpy(np.ascontiguousarray(alpha))[None, None].float()
    pm = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].float() * a
    x = torch.cat([pm, a], 1)
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    x = x.clamp(0, 1)
    pm, a = x[:, :3], x[:, 3:]
    straight = torch.where(a > 1e-4, pm / a.clamp(min=1e-4), torch.ones_like(pm)).clamp(0, 1)
    return straight[0], a[0]


def prepare_reference(path: str | Path, size: int, tolerance: float = BACKGROUND_TOLERANCE) -> tuple[np.ndarray, dict]:
    """The reference view of an image file: an (size, size, 4) uint8 straight-alpha RGBA array, and what was done.
    Raises UserError for a missing or unreadable file, an image below MIN_SIDE pixels, or one with no object."""
    rgb, alpha = load_image(path)
    h, w = rgb.shape[:2]
    info: dict = {"input_size": [w, h]}
    if alpha is not None:
        if not (alpha > 0.5).any():
            raise UserError(f"{path} is fully transparent: there is no object to reconstruct")
        info["mask"] = "alpha"
        # drop faint specks far from the object, keep soft edges of the kept components
        main = keep_main_components(alpha > 0.5)
        near = torch.nn.functional.max_pool2d(torch.from_numpy(main.astype(np.float32))[None, None], 5, 1, 2)[0, 0].numpy() > 0
        alpha = np.where(near, alpha, 0.0).astype(np.float32)
    else:
        mask, bg = remove_background(rgb, tolerance)
        if mask.sum() < MIN_OBJECT_PIXELS:
            raise UserError(f"{path}: no object found (the image is one flat colour); give an image of an object on a "
                            "plain background, or an RGBA image with transparency")
        info["mask"] = "border-colour"
        info.update(bg)
        alpha = mask.astype(np.float32)
    if (alpha > 0.5).sum() < MIN_OBJECT_PIXELS:
        raise UserError(f"{path}: the object is too small (fewer than {MIN_OBJECT_PIXELS} pixels)")
    sq_rgb, sq_a, frame = frame_object(rgb, alpha)
    info.update(frame)
    straight, a = resample_rgba(sq_rgb, sq_a, size)
    rgba = torch.cat([straight, a], 0)
    arr = (rgba * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
    if not (arr[..., 3] >= 128).any():
        raise UserError(f"{path}: the object vanishes at {size}x{size} pixels; give a larger object")
    info["coverage"] = round(float((arr[..., 3] >= 128).mean()), 4)
    return arr, info


def reference_targets(rgba: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """(1, 3, S, S) RGB over white and (1, 1, S, S) alpha of a uint8 RGBA reference."""
    x = torch.from_numpy(np.ascontiguousarray(rgba)).permute(2, 0, 1)[None].float() / 255.0
    a = x[:, 3:]
    return x[:, :3] * a + (1 - a), a


def save_reference(rgba: np.ndarray, path: Path) -> None:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buf, format="PNG")
    atomic_write_bytes(Path(path), buf.getvalue())


def read_reference(path: Path) -> np.ndarray:
    from PIL import Image

    if not Path(path).exists():
        raise UserError(f"{path} is missing: this run folder has no reference image to resume from")
    with Image.open(path) as im:
        return np.array(im.convert("RGBA"))


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

    name = "none"

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
        return NoGuidance() if cfg.guidance == "none" else super().build_guidance(cfg, prior)

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
                                    background=torch.cat([white, _background(cfg, len(cams), device)]))
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
    from .generate import scene_render_fn

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
    return run_generate(cfg, resume=resume, progress=progress, hooks=ImageHooks(rgba))


def load_image_run_config(out: Path) -> ImageTo3DConfig:
    cfg = load_run_config(out)
    if not isinstance(cfg, ImageTo3DConfig):
        raise UserError(f"{out} holds a text-to-3D run, not an image-to-3D one; resume it with `lods generate --resume`")
    return cfg
