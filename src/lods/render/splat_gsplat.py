"""The CUDA Gaussian rasterizer: `gsplat.rasterization` behind the same signature as `splat_torch`."""

from __future__ import annotations

import torch


def rasterize_gsplat(
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
    *,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    eps2d: float = 0.3,
    tile_size: int = 16,
) -> dict[str, torch.Tensor]:
    """Same inputs and outputs as `splat_torch.rasterize_torch` (CUDA tensors only).

    gsplat clamps alpha at 0.999 where the torch backend uses 3DGS's 0.99; otherwise they agree.
    """
    import gsplat  # CUDA-only extension: imported here, never at module level

    n_cams = viewmats.shape[0]
    n_ch = colors.shape[-1]
    bg = None if background is None else background.to(colors).expand(n_cams, n_ch).contiguous()
    render, alpha, meta = gsplat.rasterization(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        near_plane=near_plane, far_plane=far_plane, eps2d=eps2d, tile_size=tile_size,
        backgrounds=bg, render_mode="RGB+ED", packed=False, absgrad=False,
    )
    means2d = meta["means2d"]  # (C, N, 2), unpacked
    if means2d.requires_grad:
        means2d.retain_grad()
    radii = meta["radii"]
    if radii.dim() == 2:  # gsplat < 1.5 returns one radius per Gaussian
        radii = radii[..., None].expand(*radii.shape, 2)
    # gsplat's expected depth is 0/eps where nothing was hit, like ours.
    return {
        "rgb": render[..., :n_ch].permute(0, 3, 1, 2),
        "alpha": alpha.permute(0, 3, 1, 2),
        "depth": render[..., n_ch:].permute(0, 3, 1, 2),
        "means2d": means2d, "radii": radii, "depths": meta["depths"], "conics": meta["conics"],
    }
