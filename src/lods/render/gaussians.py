"""One entry point for rendering 3D Gaussians: gsplat on CUDA tensors, our PyTorch rasterizer otherwise."""

from __future__ import annotations

import torch

from ..errors import UserError
from .splat_torch import rasterize_torch

BACKENDS = ("auto", "torch", "gsplat")


def rasterize_gaussians(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    opacities: torch.Tensor,
    colors: torch.Tensor,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    background: torch.Tensor | None = None,
    backend: str = "auto",
    **kwargs,
) -> dict[str, torch.Tensor]:
    """Render N Gaussians into C cameras.

    means (N, 3), quats (N, 4) wxyz, scales (N, 3) (not logs), opacities (N,) in [0, 1], colors (N, D)
    or (C, N, D), viewmats (C, 4, 4) world-to-camera (OpenCV), Ks (C, 3, 3), background (D,) or (C, D).
    Returns rgb (C, D, H, W), alpha (C, 1, H, W), depth (C, 1, H, W) (expected depth, 0 on empty pixels),
    means2d (C, N, 2) (its `.grad` after backward feeds densification), radii (C, N, 2) (0 = culled),
    depths (C, N), conics (C, N, 3). kwargs: near_plane, far_plane, eps2d, tile_size.
    """
    if backend not in BACKENDS:
        raise UserError(f"unknown Gaussian rasterizer backend {backend!r}; choose from {', '.join(BACKENDS)}")
    if backend == "gsplat" or (backend == "auto" and means.is_cuda):
        from .splat_gsplat import rasterize_gsplat

        return rasterize_gsplat(means, quats, scales, opacities, colors, viewmats, Ks, width, height, background, **kwargs)
    return rasterize_torch(means, quats, scales, opacities, colors, viewmats, Ks, width, height, background, **kwargs)
