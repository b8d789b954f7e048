"""Orbit cameras shared by the world renderer and the 3D renderers.

World frame: z up; azimuth 0 puts the camera on +x looking at the origin (the "front" view).
Camera frame: OpenCV (x right, y down, z forward), as gsplat expects. `c2w` maps camera to world.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Cameras:
    """A batch of pinhole cameras (all tensors share the leading batch dim)."""

    c2w: torch.Tensor  # (B, 4, 4)
    fov_deg: torch.Tensor  # (B,) vertical = horizontal field of view (square pixels, square images)
    elevation_deg: torch.Tensor  # (B,)
    azimuth_deg: torch.Tensor  # (B,)
    distance: torch.Tensor  # (B,)

    def __len__(self) -> int:
        return self.c2w.shape[0]

    def to(self, device) -> "Cameras":
        return Cameras(*(getattr(self, f).to(device) for f in ("c2w", "fov_deg", "elevation_deg", "azimuth_deg", "distance")))

    def __getitem__(self, idx) -> "Cameras":
        return Cameras(
            self.c2w[idx], self.fov_deg[idx], self.elevation_deg[idx], self.azimuth_deg[idx], self.distance[idx]
        )

    @property
    def viewmats(self) -> torch.Tensor:
        """World-to-camera matrices (B, 4, 4)."""
        return torch.linalg.inv(self.c2w)

    def intrinsics(self, width: int, height: int) -> torch.Tensor:
        return intrinsics(self.fov_deg, width, height)


def orbit_c2w(elevation_deg, azimuth_deg, distance, target=(0.0, 0.0, 0.0)) -> torch.Tensor:
    """Camera-to-world matrices (B, 4, 4) for cameras on a sphere around `target`, looking at it."""
    el = torch.deg2rad(torch.as_tensor(elevation_deg, dtype=torch.float32)).clamp(-1.55, 1.55)
    az = torch.deg2rad(torch.as_tensor(azimuth_deg, dtype=torch.float32))
    d = torch.as_tensor(distance, dtype=torch.float32)
    el, az, d = torch.broadcast_tensors(el.reshape(-1), az.reshape(-1), d.reshape(-1))
    tgt = torch.as_tensor(target, dtype=torch.float32)
    pos = torch.stack([d * el.cos() * az.cos(), d * el.cos() * az.sin(), d * el.sin()], -1) + tgt
    forward = torch.nn.functional.normalize(tgt - pos, dim=-1)
    up = torch.tensor([0.0, 0.0, 1.0]).expand_as(forward)
    right = torch.nn.functional.normalize(torch.cross(forward, up, dim=-1), dim=-1)
    down = torch.cross(forward, right, dim=-1)
    c2w = torch.zeros(pos.shape[0], 4, 4)
    c2w[:, :3, 0] = right
    c2w[:, :3, 1] = down
    c2w[:, :3, 2] = forward
    c2w[:, :3, 3] = pos
    c2w[:, 3, 3] = 1.0
    return c2w


def orbit_cameras(elevation_deg, azimuth_deg, distance, fov_deg) -> Cameras:
    c2w = orbit_c2w(elevation_deg, azimuth_deg, distance)
    b = c2w.shape[0]

    def vec(x):
        return torch.as_tensor(x, dtype=torch.float32).reshape(-1).expand(b).clone()

    return Cameras(c2w, vec(fov_deg), vec(elevation_deg), vec(azimuth_deg), vec(distance))


def intrinsics(fov_deg, width: int, height: int) -> torch.Tensor:
    """Pinhole intrinsics (B, 3, 3); the field of view spans the image width."""
    fov = torch.deg2rad(torch.as_tensor(fov_deg, dtype=torch.float32).reshape(-1))
    focal = 0.5 * width / torch.tan(0.5 * fov)
    K = torch.zeros(fov.shape[0], 3, 3)
    K[:, 0, 0] = focal
    K[:, 1, 1] = focal
    K[:, 0, 2] = 0.5 * width
    K[:, 1, 2] = 0.5 * height
    K[:, 2, 2] = 1.0
    return K


def camera_rays(cameras: Cameras, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Ray origins and unit directions (B, H, W, 3) through pixel centres, in world space."""
    K = cameras.intrinsics(width, height).to(cameras.c2w.device)
    ys, xs = torch.meshgrid(
        torch.arange(height, device=K.device, dtype=torch.float32) + 0.5,
        torch.arange(width, device=K.device, dtype=torch.float32) + 0.5,
        indexing="ij",
    )
    x = (xs[None] - K[:, 0, 2, None, None]) / K[:, 0, 0, None, None]
    y = (ys[None] - K[:, 1, 2, None, None]) / K[:, 1, 1, None, None]
    dirs_cam = torch.stack([x, y, torch.ones_like(x)], -1)  # (B, H, W, 3)
    rot = cameras.c2w[:, :3, :3]
    dirs = torch.einsum("bij,bhwj->bhwi", rot, dirs_cam)
    dirs = torch.nn.functional.normalize(dirs, dim=-1)
    origins = cameras.c2w[:, None, None, :3, 3].expand_as(dirs)
    return origins, dirs


def view_label(elevation_deg: float, azimuth_deg: float, front_threshold: float = 45.0, overhead_threshold: float = 60.0) -> str:
    """DreamFusion's view-dependent prompt suffix for a camera."""
    if elevation_deg > overhead_threshold:
        return "overhead"
    az = (azimuth_deg + 180.0) % 360.0 - 180.0
    if abs(az) <= front_threshold:
        return "front"
    if abs(az) >= 180.0 - front_threshold:
        return "back"
    return "side"


EVAL_AZIMUTH_OFFSET_DEG = 22.5  # no evaluation view looks straight along the x axis, where side-by-side objects hide


def evaluation_cameras(n: int = 8, elevation_deg: float = 20.0, distance: float = 2.5, fov_deg: float = 40.0,
                       azimuth_offset_deg: float = EVAL_AZIMUTH_OFFSET_DEG) -> Cameras:
    """The fixed ring of cameras every evaluation uses: `n` azimuths from `azimuth_offset_deg`, evenly spaced."""
    az = azimuth_offset_deg + torch.arange(n, dtype=torch.float32) * (360.0 / n)
    return orbit_cameras(torch.full((n,), elevation_deg), az, distance, fov_deg)


@dataclass
class CameraSamplerConfig:
    """Random orbit cameras for training views (degrees, world units)."""

    elevation_range: tuple[float, float] = (-10.0, 45.0)
    azimuth_range: tuple[float, float] = (-180.0, 180.0)
    distance_range: tuple[float, float] = (2.3, 2.7)
    fov_range: tuple[float, float] = (40.0, 40.0)
    views_per_step: int = 4

    def validate(self) -> None:
        for name in ("elevation_range", "azimuth_range", "distance_range", "fov_range"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name}: low {lo} is above high {hi}")
        if self.distance_range[0] <= 0 or not 0 < self.fov_range[0] <= self.fov_range[1] < 180:
            raise ValueError("distances must be positive and fields of view in (0, 180)")
        if self.views_per_step <= 0:
            raise ValueError("views_per_step must be positive")


def sample_cameras(cfg: CameraSamplerConfig, generator: torch.Generator | None = None, n: int | None = None) -> Cameras:
    """Cameras drawn uniformly in the configured ranges; azimuths are stratified so a batch sees all sides."""
    n = n or cfg.views_per_step

    def uniform(lo, hi):
        return lo + (hi - lo) * torch.rand(n, generator=generator)

    span = cfg.azimuth_range[1] - cfg.azimuth_range[0]
    az = cfg.azimuth_range[0] + (torch.arange(n) + torch.rand(n, generator=generator)) * span / n
    return orbit_cameras(uniform(*cfg.elevation_range), az, uniform(*cfg.distance_range), uniform(*cfg.fov_range))
