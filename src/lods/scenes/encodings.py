"""The radiance field's parts: feature encodings (triplane, dense grid, hash grid), its MLP and the learned
background on the ray direction.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

ENCODINGS = ("triplane", "grid", "hashgrid")


class Triplane(nn.Module):
    """Three axis-aligned feature planes (xy, xz, yz), sampled bilinearly."""

    def __init__(self, resolution: int, channels: int, merge: str, init_std: float):
        super().__init__()
        self.planes = nn.Parameter(torch.randn(3, channels, resolution, resolution) * init_std)
        self.merge = merge
        self.out_dim = channels * (3 if merge == "concat" else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features (N, out_dim) at points x (N, 3) in [-1, 1]³."""
        coords = x[:, [0, 1, 0, 2, 1, 2]].view(-1, 3, 2).transpose(0, 1)  # (3, N, 2): xy, xz, yz
        feats = F.grid_sample(self.planes, coords[:, None], mode="bilinear", padding_mode="border", align_corners=True)
        feats = feats[:, :, 0]  # (3, C, N)
        if self.merge == "sum":
            return feats.sum(0).t()
        return feats.permute(2, 0, 1).reshape(x.shape[0], self.out_dim)


class DenseGrid(nn.Module):
    """A dense voxel grid of features, sampled trilinearly."""

    def __init__(self, resolution: int, channels: int, init_std: float):
        super().__init__()
        self.grid = nn.Parameter(torch.randn(1, channels, resolution, resolution, resolution) * init_std)
        self.out_dim = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # grid_sample's last coordinate indexes width (the last axis): (x, y, z) → grid[z, y, x]
        feats = F.grid_sample(self.grid, x[None, :, None, None], mode="bilinear", padding_mode="border", align_corners=True)
        return feats[0, :, :, 0, 0].t()


class HashGrid(nn.Module):
    """Multiresolution hash encoding (instant-ngp) in plain PyTorch: per level, trilinear interpolation of
    the 8 corner features, looked up directly while the level's grid fits its table and hashed above."""

    PRIMES = (1, 2654435761, 805459861)

    def __init__(self, levels: int, features: int, log2_size: int, base_res: int, max_res: int):
        super().__init__()
        size = 2**log2_size
        growth = math.exp((math.log(max_res) - math.log(base_res)) / max(levels - 1, 1))
        self.resolutions = [int(math.floor(base_res * growth**i)) for i in range(levels)]
        self.table_size = size
        self.tables = nn.Parameter(torch.empty(levels, size, features).uniform_(-1e-4, 1e-4))
        corners = torch.tensor([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)])
        self.register_buffer("corners", corners, persistent=False)
        self.out_dim = levels * features

    def _index(self, cell: torch.Tensor, res: int) -> torch.Tensor:
        """Table rows (…,) of integer grid vertices (…, 3) at a level of `res` cells per side."""
        side = res + 1
        if side**3 <= self.table_size:
            return cell[..., 0] + side * (cell[..., 1] + side * cell[..., 2])
        h = cell[..., 0] * self.PRIMES[0] ^ cell[..., 1] * self.PRIMES[1] ^ cell[..., 2] * self.PRIMES[2]
        return h % self.table_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = ((x + 1) * 0.5).clamp(0, 1)  # (N, 3) in the unit cube
        feats = []
        for level, res in enumerate(self.resolutions):
            pos = u * res
            cell = pos.floor().clamp(max=res - 1)
            frac = pos - cell  # (N, 3)
            verts = cell.long()[:, None, :] + self.corners  # (N, 8, 3)
            w = torch.where(self.corners.bool(), frac[:, None, :], 1 - frac[:, None, :]).prod(-1)  # (N, 8)
            f = self.tables[level][self._index(verts, res)]  # (N, 8, F)
            feats.append((w[..., None] * f).sum(1))
        return torch.cat(feats, -1)


class DirectionBackground(nn.Module):
    """A colour per ray direction: a tiny MLP on the direction and a few of its harmonics."""

    def __init__(self, hidden: int = 16, freqs: int = 2):
        super().__init__()
        self.freqs = freqs
        self.net = nn.Sequential(nn.Linear(3 * (1 + 2 * freqs), hidden), nn.ReLU(), nn.Linear(hidden, 3))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.constant_(self.net[-1].bias, 2.2)  # sigmoid(2.2) ≈ 0.9: starts near white

    def forward(self, dirs: torch.Tensor) -> torch.Tensor:
        enc = [dirs]
        for k in range(self.freqs):
            enc += [torch.sin(dirs * math.pi * 2**k), torch.cos(dirs * math.pi * 2**k)]
        return torch.sigmoid(self.net(torch.cat(enc, -1)))


def mlp(in_dim: int, hidden: int, layers: int, out_dim: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers):
        mods += [nn.Linear(dim, hidden), nn.ReLU()]
        dim = hidden
    mods.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*mods)
