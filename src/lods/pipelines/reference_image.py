"""The reference image of image-to-3D: read an image file, find the object, frame it, resample it.

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

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..utils.io import atomic_write_bytes

MIN_SIDE = 16  # pixels: smaller images are refused
MAX_PIXELS = 64 * 10**6  # larger images are refused before decoding (Pillow's bomb limit is ~179 M)
BACKGROUND_TOLERANCE = 0.1
SPECK_FRACTION = 0.25
FILL_RANGE = (0.35, 1.0)
MAX_CENTER_OFFSET = 0.15
FILL_TARGET = 0.6
MIN_OBJECT_PIXELS = 4


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
