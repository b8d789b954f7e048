"""A radiance field for CPU score distillation: a feature encoding (triplane, dense grid or hash grid) and a
small MLP, volume-rendered inside a bounding sphere.

Density starts as a "blob" at the centre (DreamFusion / threestudio) so that the first renders show a sphere
rather than fog; colour is view-independent. Rays that miss the sphere see the background: a fixed colour
or a small learned MLP on the ray direction.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import from_dict
from ..errors import ConfigError
from ..render.cameras import Cameras, camera_rays
from ..render.occupancy import OccupancyGrid
from ..render.volume import expand_background, volume_render
from .base import Scene3D
from .encodings import ENCODINGS, DenseGrid, DirectionBackground, HashGrid, Triplane, mlp

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
                raise ConfigError(f"nerf.{name} must be one of {', '.join(allowed)}; got {getattr(self, name)!r}")
        if self.num_samples < 1 or self.resolution < 2 or self.hidden_layers < 0:
            raise ConfigError("nerf needs num_samples >= 1, resolution >= 2, hidden_layers >= 0")

    @classmethod
    def from_dict(cls, data: dict | None) -> "FieldConfig":
        """The config of `data` (the run config's `nerf` mapping); unknown keys and bad values are ConfigErrors."""
        return from_dict(cls, data, "nerf")

    def loss_names(self) -> tuple[str, ...]:
        """The `loss_*` terms `regularizers` returns (each needs its λ)."""
        return LOSS_NAMES


LOSS_NAMES = ("sparsity", "opacity")


class RadianceField(Scene3D):
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
            self.mlp = mlp(self.encoding.out_dim, cfg.hidden_dim, cfg.hidden_layers, 4)
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
