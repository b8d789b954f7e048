"""Empty-space skipping for volume rendering: an occupancy grid over the [-bound, bound]³ box (nerfacc's estimator)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class OccupancyGrid(nn.Module):
    """Which cells of the [-bound, bound]³ box may hold matter, so that rendering skips empty space.

    As nerfacc's estimator: each update evaluates the density at a random point of every cell and keeps
    max(decay · old, new); a cell is occupied above `threshold` or next to such a cell (one-cell dilation,
    so matter can grow at the boundary). It starts unknown (inf: everything occupied) until the first update.
    """

    def __init__(self, resolution: int, bound: float, threshold: float, decay: float = 0.95):
        super().__init__()
        self.resolution, self.bound, self.threshold, self.decay = resolution, bound, threshold, decay
        self.register_buffer("density", torch.full((resolution,) * 3, float("inf")))

    @property
    def ready(self) -> bool:
        return not bool(torch.isinf(self.density).any())

    @torch.no_grad()
    def update(self, density_fn, chunk: int = 65536) -> None:
        G = self.resolution
        ax = torch.arange(G, device=self.density.device, dtype=torch.float32)
        cells = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
        points = ((cells + torch.rand_like(cells)) / G * 2 - 1) * self.bound
        fresh = torch.cat([density_fn(points[s : s + chunk]) for s in range(0, points.shape[0], chunk)]).view(G, G, G)
        old = self.density
        self.density.copy_(torch.where(torch.isinf(old), fresh, torch.maximum(old * self.decay, fresh)))

    def mask(self) -> torch.Tensor:
        occ = (self.density > self.threshold).float()[None, None]
        return F.max_pool3d(occ, 3, stride=1, padding=1)[0, 0] > 0

    def occupied(self, points: torch.Tensor) -> torch.Tensor:
        """Whether each point (N, 3) lies in an occupied cell (N,) bool."""
        G = self.resolution
        idx = ((points + self.bound) * (0.5 * G / self.bound)).long().clamp_(0, G - 1)
        flat = (idx[:, 0] * G + idx[:, 1]) * G + idx[:, 2]
        return self.mask().view(-1)[flat]
