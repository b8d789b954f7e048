"""Volume rendering on tensors: ray bounds, stratified samples, alpha compositing.

Rays are flat: origins and unit directions (R, 3); samples are (R, S). The emission-absorption model:
a sample of density σ over a segment of length δ has opacity α = 1 - exp(-σδ), the light reaching it is
T = exp(-Σ_{earlier} σδ), and its weight is T·α. Weights sum to the pixel's accumulated opacity.
"""

from __future__ import annotations

import torch


def ray_sphere_interval(
    origins: torch.Tensor, dirs: torch.Tensor, radius: float = 1.0, near_min: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Distances `near`, `far` (R,) where unit rays cross a sphere of `radius` at the origin.

    Rays that miss the sphere (or whose segment lies behind `near_min`) get `far == near`: zero length,
    so they render the background.
    """
    b = (origins * dirs).sum(-1)
    c = (origins * origins).sum(-1) - radius * radius
    disc = b * b - c
    root = disc.clamp(min=0).sqrt()
    near = (-b - root).clamp(min=near_min)
    far = torch.where(disc > 0, -b + root, near)
    far = torch.maximum(far, near)
    return near, far


def stratified_samples(
    near: torch.Tensor, far: torch.Tensor, n_samples: int, jitter: bool = True, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample distances `t` and segment lengths `deltas` (R, S).

    [near, far] is cut into S equal bins; each sample sits at a uniform random point of its bin (`jitter`) or
    at its centre, and stands for the whole bin, so the deltas of a ray sum exactly to `far - near`.
    """
    R = near.shape[0]
    offset = (
        torch.rand(R, n_samples, device=near.device, dtype=near.dtype, generator=generator)
        if jitter
        else torch.full((R, n_samples), 0.5, device=near.device, dtype=near.dtype)
    )
    u = (torch.arange(n_samples, device=near.device, dtype=near.dtype) + offset) / n_samples
    length = (far - near)[:, None]
    t = near[:, None] + length * u
    deltas = (length / n_samples).expand(R, n_samples)
    return t, deltas


def compositing_weights(sigma: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
    """Weights T_i·α_i (R, S) from densities and segment lengths (R, S)."""
    tau = sigma * deltas
    alpha = 1.0 - torch.exp(-tau)
    # light reaching sample i has crossed samples 0..i-1 (exclusive cumulative sum)
    transmittance = torch.exp(-(torch.cumsum(tau, dim=-1) - tau))
    return transmittance * alpha


def expand_background(background: torch.Tensor, batch: int, height: int, width: int) -> torch.Tensor:
    """A background as one colour per ray (B, H, W, 3).

    Accepts a colour (3,), one colour per camera (B, 3), an image per camera (B, 3, H, W) or per-ray colours
    (B, H, W, 3).
    """
    bg = background
    if bg.dim() in (1, 2) and bg.shape[-1] == 3:
        bg = bg.reshape(-1, 1, 1, 3)
    elif bg.dim() == 4 and not (bg.shape[-1] == 3 and tuple(bg.shape[1:3]) == (height, width)) and bg.shape[1] == 3:
        bg = bg.permute(0, 2, 3, 1)
    if bg.dim() != 4 or bg.shape[-1] != 3:
        raise ValueError(f"background of shape {tuple(background.shape)} is not a colour, (B, 3), (B, 3, H, W) or (B, H, W, 3)")
    return bg.expand(batch, height, width, 3)


def composite(
    weights: torch.Tensor,
    rgb: torch.Tensor,
    t: torch.Tensor,
    background: torch.Tensor,
    z_scale: torch.Tensor | None = None,
    eps: float = 1e-4,
) -> dict[str, torch.Tensor]:
    """Pixel values from sample weights (R, S), colours (R, S, 3) and distances (R, S).

    Returns `rgb` (R, 3) composited over `background` (R, 3), `alpha` (R,) = Σ weights, and `depth` (R,): the
    expected z-depth of the visible matter, Σ w·t·z_scale / alpha (z_scale is cos of the angle between
    the ray and the camera axis, so that depth is measured along the axis), 0 where alpha < eps.
    """
    alpha = weights.sum(-1)
    color = (weights[..., None] * rgb).sum(-2) + (1.0 - alpha)[..., None] * background
    dist = (weights * t).sum(-1)
    if z_scale is not None:
        dist = dist * z_scale
    return {"rgb": color, "alpha": alpha, "depth": _expected_depth(dist, alpha, eps)}


def _expected_depth(weighted_depth: torch.Tensor, alpha: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    return torch.where(alpha > eps, weighted_depth / alpha.clamp(min=eps), torch.zeros_like(weighted_depth))


def packed_weights(sigma: torch.Tensor, deltas: torch.Tensor, ray_ids: torch.Tensor) -> torch.Tensor:
    """`compositing_weights` for samples packed ray after ray: sigma, deltas, ray_ids (M,), ray_ids sorted.

    Transmittance is a cumulative sum over all samples minus its value where the sample's ray begins; the
    sum runs in float64 so that long opaque stretches earlier in the pack do not eat the precision.
    """
    tau = sigma * deltas
    if tau.numel() == 0:
        return tau
    wide = torch.float32 if tau.device.type == "mps" else torch.float64  # MPS has no float64
    cum = torch.cumsum(tau.to(wide), 0)
    excl = cum - tau.to(wide)
    pos = torch.arange(tau.numel(), device=tau.device)
    first = torch.ones_like(ray_ids, dtype=torch.bool)
    first[1:] = ray_ids[1:] != ray_ids[:-1]
    start = torch.cummax(torch.where(first, pos, torch.zeros_like(pos)), 0).values
    transmittance = torch.exp(-(excl - excl[start])).to(tau.dtype)
    return transmittance * (1.0 - torch.exp(-tau))


def volume_render(
    field_fn,
    origins: torch.Tensor,
    dirs: torch.Tensor,
    background: torch.Tensor,
    n_samples: int = 64,
    radius: float = 1.0,
    near_min: float = 0.0,
    jitter: bool = True,
    z_scale: torch.Tensor | None = None,
    skip_fn=None,
    generator: torch.Generator | None = None,
) -> dict[str, torch.Tensor]:
    """Render flat rays (R, 3) through `field_fn(points (N, 3)) -> (sigma (N,), rgb (N, 3))`.

    Samples are taken between the ray's entry into and exit from the bounding sphere of `radius`. With
    `skip_fn(points (N, 3)) -> keep (N,) bool`, only kept samples are evaluated (the others are empty space),
    and compositing runs on the kept samples alone, packed ray after ray. Rays carry no gradient (cameras
    are not optimised). Returns `rgb` (R, 3), `alpha` (R,), `depth` (R,) as in `composite`.
    """
    R = origins.shape[0]
    with torch.no_grad():
        near, far = ray_sphere_interval(origins, dirs, radius, near_min)
        t, deltas = stratified_samples(near, far, n_samples, jitter, generator)
        points = (origins[:, None, :] + t[..., None] * dirs[:, None, :]).reshape(-1, 3)
        keep = (deltas > 0).reshape(-1)
        if skip_fn is not None:
            keep = keep & skip_fn(points)
        idx = keep.nonzero().squeeze(1)  # ascending: grouped by ray, near to far
        ray_ids = idx // n_samples
    sigma, rgb = field_fn(points[idx])
    weights = packed_weights(sigma, deltas.reshape(-1)[idx], ray_ids)
    alpha = weights.new_zeros(R).index_add(0, ray_ids, weights)
    color = weights.new_zeros(R, 3).index_add(0, ray_ids, weights[:, None] * rgb)
    color = color + (1.0 - alpha)[:, None] * background
    dist = weights.new_zeros(R).index_add(0, ray_ids, weights * t.reshape(-1)[idx])
    if z_scale is not None:
        dist = dist * z_scale
    return {"rgb": color, "alpha": alpha, "depth": _expected_depth(dist, alpha)}
