"""A radiance field for CPU score distillation: a feature encoding (triplane, dense grid or hash grid) and a
small MLP, volume-rendered inside a bounding sphere.

Density starts as a "blob" at the centre (DreamFusion / threestudio) so that the first renders show a sphere
rather than fog; colour is view-independent. Rays that miss the sphere see the background: a fixed colour
or a small learned MLP on the ray direction.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..render.cameras import Cameras, camera_rays
from ..render.volume import expand_background, volume_render
from .base import Scene3D

ENCODINGS = ("triplane", "grid", "hashgrid")


@dataclass
class FieldConfig:
    encoding: str = "triplane"  # triplane | grid | hashgrid
    resolution: int = 64  # side of each triplane plane / of the dense grid
    channels: int = 16  # features per plane (triplane) or per voxel (grid)
    plane_merge: str = "concat"  # triplane features: concat (3·channels into the MLP) | sum (channels)
    hash_levels: int = 12
    hash_features: int = 2  # features per level
    hash_log2_size: int = 15  # entries per level's table
    hash_base_resolution: int = 16
    hash_max_resolution: int = 256
    init_std: float = 0.1  # features start as N(0, init_std²) (hash grid: uniform ±1e-4, as in instant-ngp)
    hidden_dim: int = 32
    hidden_layers: int = 1
    density_activation: str = "softplus"  # softplus | exp (gradient cut above 15, "trunc_exp")
    density_blob: str = "dreamfusion"  # dreamfusion: scale·(1 - r/radius) | magic3d: scale·exp(-r²/(2·radius²)) | none
    blob_scale: float = 10.0
    blob_radius: float = 0.5
    bound: float = 1.0  # radius of the sphere the field lives in (and the encoding's [-bound, bound]³ box)
    num_samples: int = 64  # samples per ray
    near: float = 0.05  # nearest sample distance from the camera
    perturb: bool = True  # jitter samples inside their bins while training (fixed bin centres in eval mode)
    chunk_rays: int = 16384  # rays evaluated per chunk (bounds peak memory of large renders)
    # empty-space skipping: samples in cells whose (max-EMA) density is below the threshold are not evaluated
    occupancy_resolution: int = 32  # cells per side of the occupancy grid; 0 turns skipping off
    occupancy_threshold: float = 0.1  # density; at 64 samples over a chord of 2 this is opacity 0.003 per sample
    occupancy_every: int = 16  # steps between occupancy updates (in after_step)
    background: str = "white"  # white | learned (MLP on the ray direction)
    lr_encoding: float = 1e-2
    lr_mlp: float = 1e-3
    lr_background: float = 1e-3
    # default iso-level of mesh export: the density at which 0.2 of matter (a fifth of an object) has opacity
    # 1 - e^-1. Photometric fits reach 5-10 inside objects after a few hundred steps; raise it for sharp fields
    mesh_threshold: float = 5.0
    seed: int = 0  # initial parameters

    def __post_init__(self):
        choices = {
            "encoding": ENCODINGS,
            "plane_merge": ("concat", "sum"),
            "density_activation": ("softplus", "exp"),
            "density_blob": ("dreamfusion", "magic3d", "none"),
            "background": ("white", "learned"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise UserError(f"FieldConfig.{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        if self.num_samples < 1 or self.resolution < 2 or self.hidden_layers < 0:
            raise UserError("FieldConfig needs num_samples >= 1, resolution >= 2, hidden_layers >= 0")


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


def _mlp(in_dim: int, hidden: int, layers: int, out_dim: int) -> nn.Sequential:
    mods: list[nn.Module] = []
    dim = in_dim
    for _ in range(layers):
        mods += [nn.Linear(dim, hidden), nn.ReLU()]
        dim = hidden
    mods.append(nn.Linear(dim, out_dim))
    return nn.Sequential(*mods)


class RadianceField(Scene3D):
    kind = "field"

    def __init__(self, cfg: FieldConfig | None = None, seed: int | None = None):
        """`seed`, when given, replaces cfg.seed: the initial parameters depend on it alone (the global RNG is
        left as it was; sample jitter during rendering draws from the global RNG)."""
        super().__init__()
        cfg = cfg or FieldConfig()
        if seed is not None:
            cfg = dataclasses.replace(cfg, seed=seed)
        self.cfg = cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.seed)
            if cfg.encoding == "triplane":
                self.encoding = Triplane(cfg.resolution, cfg.channels, cfg.plane_merge, cfg.init_std)
            elif cfg.encoding == "grid":
                self.encoding = DenseGrid(cfg.resolution, cfg.channels, cfg.init_std)
            else:
                self.encoding = HashGrid(
                    cfg.hash_levels, cfg.hash_features, cfg.hash_log2_size, cfg.hash_base_resolution, cfg.hash_max_resolution
                )
            self.mlp = _mlp(self.encoding.out_dim, cfg.hidden_dim, cfg.hidden_layers, 4)
            self.background_net = DirectionBackground() if cfg.background == "learned" else None
        self.mesh_threshold = cfg.mesh_threshold
        self.occupancy = (
            OccupancyGrid(cfg.occupancy_resolution, cfg.bound, cfg.occupancy_threshold)
            if cfg.occupancy_resolution > 0
            else None
        )

    @property
    def device(self) -> torch.device:
        return self.mlp[0].weight.device

    def density_bias(self, points: torch.Tensor) -> torch.Tensor:
        """The blob (N,) added to the raw density so that training starts from a ball at the centre."""
        cfg = self.cfg
        if cfg.density_blob == "none":
            return torch.zeros_like(points[:, 0])
        r2 = (points * points).sum(-1)
        if cfg.density_blob == "dreamfusion":
            return cfg.blob_scale * (1 - r2.sqrt() / cfg.blob_radius)
        return cfg.blob_scale * torch.exp(-0.5 * r2 / cfg.blob_radius**2)

    def _activate_density(self, raw: torch.Tensor) -> torch.Tensor:
        if self.cfg.density_activation == "softplus":
            return F.softplus(raw)
        # trunc_exp: exp whose input is clamped so a large raw value cannot overflow nor blow up gradients
        return torch.exp(raw.clamp(max=15.0))

    def forward_points(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Density (N,) and colour (N, 3) at world points (N, 3) inside the bounding sphere."""
        out = self.mlp(self.encoding(points / self.cfg.bound))
        sigma = self._activate_density(out[:, 0] + self.density_bias(points))
        return sigma, torch.sigmoid(out[:, 1:])

    def query(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Density and colour at any points; zero density outside the bounding sphere (where render never looks)."""
        points = points.to(self.device)
        sigma, rgb = self.forward_points(points)
        inside = (points * points).sum(-1) <= self.cfg.bound**2
        return torch.where(inside, sigma, torch.zeros_like(sigma)), rgb

    def background_colors(self, dirs: torch.Tensor) -> torch.Tensor:
        """The model's own background (…, 3) for unit ray directions (…, 3)."""
        if self.background_net is not None:
            return self.background_net(dirs)
        return torch.ones_like(dirs)

    def render(self, cameras: Cameras, size: int, background: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """`rgb` (B, 3, H, W) over the background, `alpha` and z-`depth` (B, 1, H, W; depth 0 where empty)."""
        cfg = self.cfg
        cameras = cameras.to(self.device)
        origins, dirs = camera_rays(cameras, size, size)  # (B, H, W, 3)
        B = origins.shape[0]
        if background is None:
            bg = self.background_colors(dirs)
        else:
            bg = expand_background(background.to(self.device, torch.float32), B, size, size)
        forward = cameras.c2w[:, None, None, :3, 2]
        z_scale = (dirs * forward).sum(-1)  # cos(ray, camera axis): distance along the ray → z-depth
        o, d, b, z = (v.reshape(B * size * size, -1) for v in (origins, dirs, bg, z_scale))
        jitter = cfg.perturb and self.training
        skip_fn = None
        if self.occupancy is not None:
            if not self.occupancy.ready:
                self.update_occupancy()
            skip_fn = self.occupancy.occupied
        chunks = []
        for s in range(0, o.shape[0], cfg.chunk_rays):
            e = s + cfg.chunk_rays
            chunks.append(
                volume_render(
                    self.forward_points, o[s:e], d[s:e], b[s:e], cfg.num_samples, cfg.bound, cfg.near, jitter, z[s:e, 0], skip_fn
                )
            )
        rgb, alpha, depth = (torch.cat([c[k] for c in chunks]) for k in ("rgb", "alpha", "depth"))
        return {
            "rgb": rgb.view(B, size, size, 3).permute(0, 3, 1, 2),
            "alpha": alpha.view(B, 1, size, size),
            "depth": depth.view(B, 1, size, size),
        }

    def update_occupancy(self) -> None:
        if self.occupancy is not None:
            self.occupancy.update(lambda p: self.forward_points(p)[0])

    def after_step(self, step: int, out: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
        if self.occupancy is not None and step % self.cfg.occupancy_every == 0:
            self.update_occupancy()

    def regularizers(self, out: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        """`loss_sparsity`: mean accumulated opacity (less stray matter); `loss_opacity`: binary entropy of
        alpha, pushing each pixel to fully empty or fully covered."""
        a = out["alpha"].clamp(1e-5, 1 - 1e-5)
        entropy = -(a * torch.log(a) + (1 - a) * torch.log(1 - a))
        return {"loss_sparsity": out["alpha"].mean(), "loss_opacity": entropy.mean()}

    def param_groups(self) -> list[dict]:
        cfg = self.cfg
        groups = [
            {"name": "encoding", "params": list(self.encoding.parameters()), "lr": cfg.lr_encoding},
            {"name": "mlp", "params": list(self.mlp.parameters()), "lr": cfg.lr_mlp},
        ]
        if self.background_net is not None:
            groups.append({"name": "background", "params": list(self.background_net.parameters()), "lr": cfg.lr_background})
        return groups

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.state_dict().items()}

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        own = self.state_dict()
        missing, unexpected = sorted(set(own) - set(tensors)), sorted(set(tensors) - set(own))
        if missing or unexpected:
            raise ValueError(f"field state mismatch: missing {missing}, unexpected {unexpected}")
        for k, v in tensors.items():
            if v.shape != own[k].shape:
                raise ValueError(f"field state {k}: shape {tuple(v.shape)} != {tuple(own[k].shape)} (different FieldConfig?)")
        self.load_state_dict({k: v.to(own[k].device, own[k].dtype) for k, v in tensors.items()})
