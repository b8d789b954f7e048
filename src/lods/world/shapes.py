"""Signed distance functions of the world's shapes and context elements, at canonical size.

Every object fits the cube [-0.5, 0.5]^3 (z up); `BOTTOM[shape]` is the z of its lowest point.
"""

from __future__ import annotations

import torch

SHAPES = ("sphere", "cube", "cone", "cylinder", "torus", "pyramid")

COLORS = {
    "red": (0.86, 0.12, 0.10),
    "orange": (0.96, 0.52, 0.06),
    "yellow": (0.95, 0.85, 0.12),
    "green": (0.16, 0.68, 0.22),
    "blue": (0.12, 0.26, 0.86),
    "purple": (0.56, 0.18, 0.76),
    "pink": (0.96, 0.50, 0.72),
    "gray": (0.50, 0.50, 0.50),
}

CONTEXTS = ("checkered floor", "pedestal", "mat")

BOTTOM = {"sphere": -0.5, "cube": -0.42, "cone": -0.5, "cylinder": -0.45, "torus": -0.17, "pyramid": -0.5}


def _length(p):
    return torch.linalg.vector_norm(p, dim=-1)


def sd_sphere(p):
    return _length(p) - 0.5


def sd_box(p, half=(0.42, 0.42, 0.42)):
    q = p.abs() - torch.tensor(half, dtype=p.dtype, device=p.device)
    return _length(q.clamp(min=0)) + q.max(dim=-1).values.clamp(max=0)


def sd_cylinder(p, radius=0.42, half_height=0.45):
    d = torch.stack([_length(p[..., :2]) - radius, p[..., 2].abs() - half_height], -1)
    return d.max(dim=-1).values.clamp(max=0) + _length(d.clamp(min=0))


def sd_cone(p, radius=0.5, height=1.0):
    """Upright cone, base at z=-0.5, apex at z=+0.5 (exact SDF of a capped cone)."""
    r = _length(p[..., :2])
    z = p[..., 2] + 0.5  # 0 at the base, `height` at the apex
    # 2D problem in (r, z): triangle (0,0) - (radius,0) - (0,height)
    # distance to the slanted edge from (radius,0) to (0,height)
    ex, ez = -radius, height
    wx, wz = r - radius, z
    t = ((wx * ex + wz * ez) / (ex * ex + ez * ez)).clamp(0, 1)
    d_slant = torch.sqrt((wx - t * ex) ** 2 + (wz - t * ez) ** 2)
    d_base = torch.sqrt((r - r.clamp(max=radius)) ** 2 + z**2)
    d = torch.minimum(d_slant, d_base)
    inside = (z > 0) & (r * height + z * radius < radius * height)
    return torch.where(inside, -d, d)


def sd_torus(p, major=0.33, minor=0.17):
    q = torch.stack([_length(p[..., :2]) - major, p[..., 2]], -1)
    return _length(q) - minor


def sd_pyramid(p, half=0.5, height=1.0):
    """Square pyramid, base 1x1 at z=-0.5, apex at z=+0.5 (intersection of half-spaces; a bound, not exact)."""
    z = p[..., 2] + 0.5
    n = torch.tensor([height, half], dtype=p.dtype, device=p.device)
    n = n / n.norm()
    side_x = n[0] * (p[..., 0].abs() - half) + n[1] * z
    side_y = n[0] * (p[..., 1].abs() - half) + n[1] * z
    return torch.stack([side_x, side_y, -z, z - height], -1).max(dim=-1).values


SDF = {
    "sphere": sd_sphere,
    "cube": sd_box,
    "cone": sd_cone,
    "cylinder": sd_cylinder,
    "torus": sd_torus,
    "pyramid": sd_pyramid,
}
