"""A small differentiable 3D Gaussian rasterizer in plain PyTorch (the CPU backend).

Same conventions as gsplat: OpenCV cameras, `viewmats` world-to-camera (C, 4, 4), pixel centres at
integer + 0.5, EWA projection with a 0.3 px low-pass dilation, conics = upper triangle of the inverse
2D covariance, radii (C, N, 2) in pixels with 0 meaning culled. Compositing is front-to-back per
16x16 tile over the depth-sorted Gaussians whose bounding box overlaps it: a dense (pixels x Gaussians)
alpha matrix per chunk, cumprod for transmittance, stopping once every pixel of the tile is opaque.
alpha = min(0.99, opacity * exp(-d^T conic d / 2)), skipped below 1/255 (3DGS). Autograd does the backward.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

ALPHA_MIN = 1.0 / 255.0  # contributions below this are skipped, as in 3DGS / gsplat
T_MIN = 1e-4  # a tile stops compositing once all its pixels' transmittance is below this


def quat_to_rotmat(quats: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) from quaternions (..., 4) in wxyz order (normalised here)."""
    w, x, y, z = F.normalize(quats, dim=-1).unbind(-1)
    rot = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    )
    return rot.reshape(quats.shape[:-1] + (3, 3))


def project_gaussians(
    means: torch.Tensor,
    quats: torch.Tensor,
    scales: torch.Tensor,
    viewmats: torch.Tensor,
    Ks: torch.Tensor,
    width: int,
    height: int,
    opacities: torch.Tensor | None = None,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """EWA projection of N Gaussians into C cameras.

    Returns means2d (C, N, 2) in pixels, conics (C, N, 3) = (a, b, c) with the inverse 2D covariance
    [[a, b], [b, c]], depths (C, N) (camera z) and integer radii (C, N, 2) (0 = culled: behind the near
    plane, beyond the far plane, off screen, or too transparent when `opacities` is given).
    """
    rot_v = viewmats[:, None, :3, :3]  # (C, 1, 3, 3)
    means_c = (rot_v @ means[None, :, :, None]).squeeze(-1) + viewmats[:, None, :3, 3]  # (C, N, 3)
    tx, ty, tz = means_c.unbind(-1)
    in_depth = (tz > near_plane) & (tz < far_plane)
    tz = torch.where(in_depth, tz, torch.ones_like(tz))  # culled rows get finite values (no NaN gradients)

    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # (C, 1)
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    means2d = torch.stack([fx * tx / tz + cx, fy * ty / tz + cy], -1)

    # Jacobian of the perspective map, evaluated with x/z, y/z clamped to 1.3x the frustum (as gsplat).
    lim_x = 0.3 * 0.5 * width / fx
    lim_y = 0.3 * 0.5 * height / fy
    u = torch.maximum(torch.minimum(tx / tz, (width - cx) / fx + lim_x), -cx / fx - lim_x)
    v = torch.maximum(torch.minimum(ty / tz, (height - cy) / fy + lim_y), -cy / fy - lim_y)
    zero = torch.zeros_like(tz)
    jac = torch.stack([fx / tz, zero, -fx * u / tz, zero, fy / tz, -fy * v / tz], -1).reshape(tz.shape + (2, 3))

    # cov2d = J W R S S^T R^T W^T J^T, built as A A^T so it is symmetric by construction.
    rs = quat_to_rotmat(quats) * scales[:, None, :]  # (N, 3, 3) = R S
    a = jac @ rot_v @ rs[None]  # (C, N, 2, 3)
    cov = a @ a.transpose(-1, -2)
    cxx = cov[..., 0, 0] + eps2d
    cyy = cov[..., 1, 1] + eps2d
    cxy = cov[..., 0, 1]
    det = (cxx * cyy - cxy * cxy).clamp_min(1e-10)
    conics = torch.stack([cyy / det, -cxy / det, cxx / det], -1)

    with torch.no_grad():
        extent = torch.full_like(tz, 3.33)
        if opacities is not None:
            op = opacities.detach()[None].expand_as(tz)
            extent = torch.minimum(extent, torch.sqrt(2 * torch.log((op / ALPHA_MIN).clamp_min(1.0))))
        radii = torch.stack([torch.ceil(extent * cxx.sqrt()), torch.ceil(extent * cyy.sqrt())], -1)
        mx, my = means2d.detach().unbind(-1)
        valid = in_depth & (radii > 0).all(-1)
        valid &= (mx + radii[..., 0] > 0) & (mx - radii[..., 0] < width)
        valid &= (my + radii[..., 1] > 0) & (my - radii[..., 1] < height)
        radii = torch.where(valid[..., None], radii, torch.zeros_like(radii)).int()
    return means2d, conics, means_c[..., 2], radii


def _composite_tile(
    pix: torch.Tensor, means2d: torch.Tensor, conics: torch.Tensor, opac: torch.Tensor, feats: torch.Tensor,
    alpha_max: float, chunk: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Front-to-back compositing of K depth-sorted Gaussians over P pixels: (P, D) sums and (P,) transmittance.

    pix and means2d are relative to the tile centre, which keeps the expanded quadratic below accurate:
    log(opacity) - sigma = -[x^2, y^2, xy, x, y, 1] @ coef, one matmul per chunk.
    """
    x, y = pix.unbind(-1)
    basis = torch.stack([x * x, y * y, x * y, x, y, torch.ones_like(x)], -1)  # (P, 6)
    a, b, c = conics.unbind(-1)
    mx, my = means2d.unbind(-1)
    coef = torch.stack([
        0.5 * a, 0.5 * c, b, -(a * mx + b * my), -(c * my + b * mx),
        0.5 * a * mx * mx + 0.5 * c * my * my + b * mx * my - torch.log(opac),
    ])  # (6, K)
    trans = pix.new_ones(pix.shape[0])
    acc = pix.new_zeros(pix.shape[0], feats.shape[-1])
    for start in range(0, coef.shape[1], chunk):
        sl = slice(start, start + chunk)
        alpha = torch.exp(-(basis @ coef[:, sl])).clamp_max(alpha_max)  # (P, k)
        alpha = torch.where(alpha >= ALPHA_MIN, alpha, torch.zeros_like(alpha))
        t_incl = torch.cumprod(1 - alpha, dim=-1)
        t_excl = torch.cat([torch.ones_like(t_incl[:, :1]), t_incl[:, :-1]], -1)
        acc = acc + (alpha * t_excl * trans[:, None]) @ feats[sl]
        trans = trans * t_incl[:, -1]
        if bool((trans < T_MIN).all()):
            break
    return acc, trans


def rasterize_torch(
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
    alpha_max: float = 0.99,
    chunk: int = 256,
) -> dict[str, torch.Tensor]:
    """Render N Gaussians (means (N,3), quats (N,4) wxyz, scales (N,3), opacities (N,) in [0,1],
    colors (N,D) or (C,N,D)) into C cameras.

    Returns rgb (C, D, H, W) composited over `background` ((D,) or (C, D); black if None), alpha
    (C, 1, H, W), expected depth (C, 1, H, W) (0 where nothing was hit), and means2d (C, N, 2), whose
    `.grad` after backward is the screen-space gradient densification needs, radii (C, N, 2), depths
    (C, N) and conics (C, N, 3).
    """
    n_cams = viewmats.shape[0]
    means2d, conics, depths, radii = project_gaussians(
        means, quats, scales, viewmats, Ks, width, height, opacities, eps2d, near_plane, far_plane
    )
    if means2d.requires_grad:
        means2d.retain_grad()
    colors = colors.expand(n_cams, *colors.shape[-2:]) if colors.dim() == 2 else colors
    n_ch = colors.shape[-1]
    bg = colors.new_zeros(n_cams, n_ch) if background is None else background.to(colors).expand(n_cams, n_ch)

    tiles_x, tiles_y = math.ceil(width / tile_size), math.ceil(height / tile_size)
    xs = torch.arange(width, device=means.device, dtype=means.dtype) + 0.5
    ys = torch.arange(height, device=means.device, dtype=means.dtype) + 0.5
    images = []
    for c in range(n_cams):
        with torch.no_grad():
            vis = (radii[c] > 0).all(-1).nonzero().squeeze(1)
            vis = vis[torch.argsort(depths[c, vis], stable=True)]  # front to back
            mx, my = means2d[c, vis].unbind(-1)
            rx, ry = radii[c, vis].unbind(-1)
            x0 = torch.arange(tiles_x, device=means.device) * tile_size
            y0 = torch.arange(tiles_y, device=means.device) * tile_size
            hit_x = (mx[None] + rx[None] > x0[:, None]) & (mx[None] - rx[None] < x0[:, None] + tile_size)
            hit_y = (my[None] + ry[None] > y0[:, None]) & (my[None] - ry[None] < y0[:, None] + tile_size)
        feats = torch.cat([colors[c], depths[c, :, None]], -1)
        rows = []
        for ty in range(tiles_y):
            ty_px = ys[ty * tile_size:(ty + 1) * tile_size]
            row = []
            for tx in range(tiles_x):
                tx_px = xs[tx * tile_size:(tx + 1) * tile_size]
                centre = torch.stack([tx_px.mean(), ty_px.mean()])
                pix = torch.stack(torch.meshgrid(ty_px, tx_px, indexing="ij")[::-1], -1).reshape(-1, 2) - centre
                ids = vis[(hit_x[tx] & hit_y[ty]).nonzero().squeeze(1)]
                acc, trans = _composite_tile(
                    pix, means2d[c, ids] - centre, conics[c, ids], opacities[ids], feats[ids], alpha_max, chunk
                )
                row.append(torch.cat([acc, trans[:, None]], -1).reshape(len(ty_px), len(tx_px), n_ch + 2))
            rows.append(torch.cat(row, 1))
        image = torch.cat(rows, 0)  # (H, W, D + 2): colour sums, depth sum, transmittance
        images.append(image)
    image = torch.stack(images).permute(0, 3, 1, 2)  # (C, D + 2, H, W)
    trans = image[:, -1:]
    alpha = 1 - trans
    rgb = image[:, :n_ch] + trans * bg[:, :, None, None]
    depth = image[:, n_ch:n_ch + 1] / alpha.clamp_min(1e-10)
    return {
        "rgb": rgb, "alpha": alpha, "depth": depth,
        "means2d": means2d, "radii": radii, "depths": depths, "conics": conics,
    }
