"""Images from tensors: (C, H, W) floats in [0, 1] to uint8 arrays, grids of them, PNG files."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..utils.io import atomic_write_bytes


def to_uint8(image: torch.Tensor) -> np.ndarray:
    """A (C, H, W) float image in [0, 1] (C = 1, 3 or 4) as an (H, W, C) uint8 array ((H, W) for C = 1)."""
    if image.dim() != 3 or image.shape[0] not in (1, 3, 4):
        raise ValueError(f"expected an image (C, H, W) with C in 1, 3, 4; got {tuple(image.shape)}")
    arr = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return arr[..., 0] if arr.shape[-1] == 1 else arr


def image_grid(images, nrow: int = 8, padding: int = 0, pad_value: float = 1.0) -> torch.Tensor:
    """Tile images (B, C, H, W) or a list of (C, H, W) into one (C, H', W'): `nrow` images per row, as
    torchvision's make_grid. Single-channel images are tiled with others as grey RGB."""
    if isinstance(images, torch.Tensor):
        if images.dim() == 3:
            images = images[None]
        images = list(images)
    if not images:
        raise ValueError("image_grid needs at least one image")
    channels = max(im.shape[0] for im in images)
    images = [im.expand(channels, -1, -1) if im.shape[0] == 1 else im for im in images]
    h = max(im.shape[1] for im in images)
    w = max(im.shape[2] for im in images)
    ncol = min(nrow, len(images))
    nrows = math.ceil(len(images) / ncol)
    grid = torch.full(
        (channels, nrows * h + (nrows + 1) * padding, ncol * w + (ncol + 1) * padding), float(pad_value), dtype=torch.float32
    )
    for i, im in enumerate(images):
        r, c = divmod(i, ncol)
        y, x = padding + r * (h + padding), padding + c * (w + padding)
        grid[:, y : y + im.shape[1], x : x + im.shape[2]] = im.detach().float().cpu()
    return grid


def encode_image(image: torch.Tensor, fmt: str = "PNG") -> bytes:
    buf = io.BytesIO()
    Image.fromarray(to_uint8(image)).save(buf, format=fmt)
    return buf.getvalue()


def save_image(image: torch.Tensor, path, nrow: int = 8) -> Path:
    """Write an image (C, H, W), or a batch (B, C, H, W) as a grid, atomically; the format follows the suffix."""
    path = Path(path)
    if image.dim() == 4:
        image = image_grid(image, nrow)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".bmp": "BMP"}.get(path.suffix.lower(), "PNG")
    if fmt == "JPEG" and image.shape[0] == 4:
        image = image[:3]
    atomic_write_bytes(path, encode_image(image, fmt))
    return path
