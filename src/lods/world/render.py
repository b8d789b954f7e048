"""Ground-truth renderer of the world: sphere tracing of the scene's SDF, Lambert shading, white background.

Returns rgb in [0, 1] (B, 3, H, W), alpha (B, 1, H, W) and z-depth (B, 1, H, W; 0 where empty), with
`supersample`² rays per pixel for anti-aliasing.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F

from ..render.cameras import Cameras, camera_rays
from .scene import Primitive, Scene
from .shapes import SDF, sd_box, sd_cylinder
from .variation import CANONICAL, Variation, shade_albedo, turn_light

LIGHTS = ((0.55, 0.35, 0.76, 0.55), (-0.6, -0.4, 0.45, 0.25))  # direction xyz, intensity
AMBIENT = 0.38
BOUND = 1.75  # every scene lies inside this sphere


def _prim_sdf(prim: Primitive, p: torch.Tensor) -> torch.Tensor:
    q = (p - torch.tensor(prim.center, dtype=p.dtype, device=p.device)) / prim.scale
    if prim.kind == "box":
        d = sd_box(q, prim.half)
    elif prim.kind == "pedestal":
        d = sd_cylinder(q, prim.radius, prim.half[2])
    else:
        d = SDF[prim.kind](q)
    return d * prim.scale


def scene_sdf(prims: list[Primitive], p: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Distance to the scene and the index of the nearest primitive."""
    ds = torch.stack([_prim_sdf(pr, p) for pr in prims], -1)
    d, idx = ds.min(dim=-1)
    return d, idx


def _albedo(prims: list[Primitive], idx: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    table = torch.tensor([pr.albedo for pr in prims], dtype=p.dtype, device=p.device)
    col = table[idx]
    for i, pr in enumerate(prims):
        if pr.checker:
            parity = (torch.floor(p[..., 0] * 2.5) + torch.floor(p[..., 1] * 2.5)).remainder(2)
            dark = torch.tensor([0.30, 0.30, 0.32], dtype=p.dtype, device=p.device)
            checker = torch.where(parity[..., None] > 0, dark.expand_as(col), col)
            col = torch.where((idx == i)[..., None], checker, col)
    return col


@torch.no_grad()
def render_scene(scene: Scene, cameras: Cameras, size: int = 32, supersample: int = 2, steps: int = 64,
                 variation: Variation = CANONICAL) -> dict:
    """`variation` shades the objects and turns the lights (world/variation.py); the default is the canonical render."""
    prims = scene.primitives()
    for i in range(len(scene.objects)):  # the scene's objects come first among its primitives
        prims[i] = replace(prims[i], albedo=shade_albedo(prims[i].albedo, *variation.shade(i)))
    res = size * supersample
    origins, dirs = camera_rays(cameras, res, res)
    B = origins.shape[0]
    o = origins.reshape(-1, 3)
    d = dirs.reshape(-1, 3)
    # start at the bounding sphere
    b = (o * d).sum(-1)
    c = (o * o).sum(-1) - BOUND**2
    disc = b * b - c
    t = (-b - disc.clamp(min=0).sqrt()).clamp(min=0)
    t_far = -b + disc.clamp(min=0).sqrt()
    missed = disc <= 0
    for _ in range(steps):
        dist, _ = scene_sdf(prims, o + t[:, None] * d)
        t = torch.minimum(t + 0.9 * dist, t_far)
    p = o + t[:, None] * d
    dist, idx = scene_sdf(prims, p)
    hit = (dist.abs() < 2e-3) & ~missed & (t < t_far)
    eps = 1e-3
    offs = torch.eye(3) * eps
    grad = torch.stack([scene_sdf(prims, p + offs[i])[0] - scene_sdf(prims, p - offs[i])[0] for i in range(3)], -1)
    n = F.normalize(grad, dim=-1)
    shade = torch.full_like(t, AMBIENT)
    for lx, ly, lz, w in LIGHTS:
        light = F.normalize(turn_light((lx, ly, lz), variation.light_yaw_deg), dim=0)
        shade = shade + w * variation.light_gain * (n @ light).clamp(min=0)
    rgb = (_albedo(prims, idx, p) * shade[:, None]).clamp(0, 1)
    alpha = hit.float()
    rgb = torch.where(hit[:, None], rgb, torch.ones_like(rgb))
    forward = cameras.c2w[:, :3, 2].repeat_interleave(res * res, 0)
    depth = torch.where(hit, t * (d * forward).sum(-1), torch.zeros_like(t))

    def pool(x, ch):
        x = x.reshape(B, res, res, ch).permute(0, 3, 1, 2)
        return F.avg_pool2d(x, supersample) if supersample > 1 else x

    alpha_img = pool(alpha[:, None], 1)
    depth_sum = pool(depth[:, None], 1)
    depth_img = torch.where(alpha_img > 0, depth_sum / alpha_img.clamp(min=1e-6), torch.zeros_like(depth_sum))
    return {"rgb": pool(rgb, 3), "alpha": alpha_img, "depth": depth_img}
