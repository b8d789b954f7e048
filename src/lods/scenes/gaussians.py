"""3D Gaussian Splatting as a `Scene3D`: its config, parameters, per-attribute learning rates, regularisers and mesh
queries; adaptive density control is lods.scenes.densify, the ply file lods.scenes.ply.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..config import from_dict
from ..errors import ConfigError, UserError
from ..render.cameras import Cameras
from ..render.gaussians import BACKENDS, rasterize_gaussians
from ..render.splat_torch import quat_to_rotmat
from .base import Scene3D
from .densify import PARAMS, DensityControl, logit

SH_C0 = 0.28209479177387814
SH_C1 = 0.4886025119029199
SH_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
SH_C3 = (
    -0.5900435899266435, 2.890611442640554, -0.4570457994644658, 0.3731763325901154,
    -0.4570457994644658, 1.445305721320277, -0.5900435899266435,
)


@dataclass
class GaussiansConfig:
    num_points: int = 4096  # initial count for the "ball" init (1000 is enough for quick runs)
    init: str = "ball"  # "ball": uniform in a ball; "points": from a given point cloud (xyz, rgb)
    init_radius: float = 0.5
    init_opacity: float = 0.1
    init_scale: float | None = None  # None: sqrt of the mean squared distance to the 3 nearest neighbours
    sh_degree: int = 0  # 0..3; degree 0 is view-independent colour 0.5 + C0 * f_dc
    seed: int = 0
    # learning rates (Adam, eps 1e-15, no weight decay); means decay exponentially to lr_means_final
    lr_means: float = 1e-3
    lr_means_final: float | None = 2e-5
    lr_means_steps: int = 2500
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacities: float = 5e-2
    lr_colors: float = 1e-2  # f_dc; f_rest uses lr_colors / 20 as in 3DGS
    # adaptive density control (gsplat's gradient normalisation: pixels scaled by width/2, height/2, #cameras)
    densify_from: int = 100
    densify_until: int = 1000
    densify_every: int = 100
    grad_threshold: float = 2e-4
    scene_extent: float = 1.0
    percent_dense: float = 0.01  # split above percent_dense * scene_extent (max scale), clone below
    prune_opacity: float = 0.005
    prune_scale: float = 0.5  # prune Gaussians whose max scale exceeds prune_scale * scene_extent (3DGS: 0.1, late)
    prune_screen_size: float | None = None  # prune Gaussians whose screen radius exceeded this (pixels) since the last densify
    max_gaussians: int = 50_000
    opacity_reset_every: int = 0  # 0 = never; 3DGS resets opacities to <= 0.01 every 3000 steps
    # optional regularisers (the loop weights them with lambda_*)
    reg_opacity_entropy: bool = False  # loss_opacity: binary entropy pushing opacities to 0 or 1
    reg_anisotropy: bool = False  # loss_anisotropy: penalises max/min scale above max_anisotropy
    max_anisotropy: float = 10.0
    # rendering
    backend: str = "auto"  # "auto" (gsplat on CUDA, torch otherwise), "torch", "gsplat"
    near_plane: float = 0.01

    def __post_init__(self):
        if not 0 <= self.sh_degree <= 3:
            raise ConfigError(f"gaussians.sh_degree must be 0..3, got {self.sh_degree}")
        if self.init not in ("ball", "points"):
            raise ConfigError(f'gaussians.init must be "ball" or "points", got {self.init!r}')
        if self.backend not in BACKENDS:
            raise ConfigError(f"gaussians.backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        positive = ("num_points", "init_radius", "lr_scales", "lr_quats", "lr_opacities", "lr_colors", "densify_every",
                    "scene_extent", "max_gaussians", "max_anisotropy", "near_plane")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"gaussians.{name} must be positive, got {getattr(self, name)}")
        if not 0.0 < self.init_opacity < 1.0:
            raise ConfigError(f"gaussians.init_opacity must lie in (0, 1), got {self.init_opacity}")

    @classmethod
    def from_dict(cls, data: dict | None) -> "GaussiansConfig":
        """The config of `data` (the run config's `gaussians` mapping); unknown keys and bad values are ConfigErrors."""
        return from_dict(cls, data, "gaussians")

    def loss_names(self) -> tuple[str, ...]:
        """The `loss_*` terms `regularizers` returns under this config (each needs its λ)."""
        return ("sparsity",) + ("opacity",) * self.reg_opacity_entropy + ("anisotropy",) * self.reg_anisotropy


LOSS_NAMES = ("sparsity", "opacity", "anisotropy")  # every loss a Gaussian scene can return


def sh_to_rgb(sh: torch.Tensor, dirs: torch.Tensor | None, degree: int) -> torch.Tensor:
    """Colour 0.5 + sum_k Y_k(dir) sh_k, clamped to [0, 1]. sh (..., (degree+1)^2, 3), dirs (..., 3) unit."""
    out = SH_C0 * sh[..., 0, :]
    if degree > 0:
        x, y, z = (dirs[..., i:i + 1] for i in range(3))
        out = out - SH_C1 * y * sh[..., 1, :] + SH_C1 * z * sh[..., 2, :] - SH_C1 * x * sh[..., 3, :]
        if degree > 1:
            xx, yy, zz, xy, yz, xz = x * x, y * y, z * z, x * y, y * z, x * z
            out = (
                out + SH_C2[0] * xy * sh[..., 4, :] + SH_C2[1] * yz * sh[..., 5, :]
                + SH_C2[2] * (2 * zz - xx - yy) * sh[..., 6, :] + SH_C2[3] * xz * sh[..., 7, :]
                + SH_C2[4] * (xx - yy) * sh[..., 8, :]
            )
            if degree > 2:
                out = (
                    out + SH_C3[0] * y * (3 * xx - yy) * sh[..., 9, :] + SH_C3[1] * xy * z * sh[..., 10, :]
                    + SH_C3[2] * y * (4 * zz - xx - yy) * sh[..., 11, :]
                    + SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy) * sh[..., 12, :]
                    + SH_C3[4] * x * (4 * zz - xx - yy) * sh[..., 13, :]
                    + SH_C3[5] * z * (xx - yy) * sh[..., 14, :] + SH_C3[6] * x * (xx - 3 * yy) * sh[..., 15, :]
                )
    return (out + 0.5).clamp(0.0, 1.0)


def sh_basis(dirs: torch.Tensor, degree: int) -> torch.Tensor:
    """The real SH basis (..., (degree+1)^2) at unit directions (..., 3), in the order and signs of `sh_to_rgb`
    (colour = 0.5 + sh_basis(dirs) @ sh)."""
    x, y, z = dirs[..., 0], dirs[..., 1], dirs[..., 2]
    out = [torch.full_like(x, SH_C0)]
    if degree > 0:
        out += [-SH_C1 * y, SH_C1 * z, -SH_C1 * x]
    if degree > 1:
        xx, yy, zz = x * x, y * y, z * z
        out += [SH_C2[0] * x * y, SH_C2[1] * y * z, SH_C2[2] * (2 * zz - xx - yy), SH_C2[3] * x * z, SH_C2[4] * (xx - yy)]
    if degree > 2:
        out += [
            SH_C3[0] * y * (3 * xx - yy), SH_C3[1] * x * y * z, SH_C3[2] * y * (4 * zz - xx - yy),
            SH_C3[3] * z * (2 * zz - 3 * xx - 3 * yy), SH_C3[4] * x * (4 * zz - xx - yy), SH_C3[5] * z * (xx - yy),
            SH_C3[6] * x * (xx - 3 * yy),
        ]
    return torch.stack(out, -1)


def rgb_to_sh(rgb: torch.Tensor) -> torch.Tensor:
    return (rgb - 0.5) / SH_C0


def _knn_scale(xyz: torch.Tensor, k: int = 3, chunk: int = 1024) -> torch.Tensor:
    """sqrt of the mean squared distance to the k nearest other points, (M,)."""
    if xyz.shape[0] <= 1:
        return torch.full((xyz.shape[0],), 0.01)
    k = min(k, xyz.shape[0] - 1)
    out = []
    for start in range(0, xyz.shape[0], chunk):
        d2 = torch.cdist(xyz[start:start + chunk], xyz).square()
        d2, _ = d2.topk(k + 1, dim=-1, largest=False)  # the first is the point itself
        out.append(d2[:, 1:].mean(-1))
    return torch.cat(out).clamp_min(1e-14).sqrt()


class GaussianScene(DensityControl, Scene3D):
    """N anisotropic 3D Gaussians: means (N,3), log scales (N,3), quats (N,4) wxyz, opacity logits (N,),
    SH colour coefficients f_dc (N,3) and f_rest (N, (d+1)^2 - 1, 3)."""

    def __init__(self, cfg: GaussiansConfig | None = None, points: tuple | None = None, seed: int | None = None):
        """`points` = (xyz (M,3), rgb (M,3) in [0,1] or 0..255) arrays or tensors, used when cfg.init == "points"
        (all M points are kept); `seed`, when given, replaces cfg.seed (init and split sampling)."""
        super().__init__()
        cfg = cfg or GaussiansConfig()
        if seed is not None:
            cfg = dataclasses.replace(cfg, seed=seed)
        self.cfg = cfg
        self._gen = torch.Generator().manual_seed(cfg.seed)  # CPU; samples are moved to the params' device
        xyz, rgb = self._init_points(points)
        n = xyz.shape[0]
        scale = torch.full((n,), float(cfg.init_scale)) if cfg.init_scale else _knn_scale(xyz)
        n_rest = (cfg.sh_degree + 1) ** 2 - 1
        self.means = nn.Parameter(xyz)
        self.scales = nn.Parameter(scale.log()[:, None].repeat(1, 3))
        self.quats = nn.Parameter(torch.tensor([1.0, 0.0, 0.0, 0.0]).repeat(n, 1))
        self.opacities = nn.Parameter(logit(torch.full((n,), cfg.init_opacity)))
        self.f_dc = nn.Parameter(rgb_to_sh(rgb))
        self.f_rest = nn.Parameter(torch.zeros(n, n_rest, 3))
        self._reset_stats()
        self.last_densify: dict[str, int] = {}

    def _init_points(self, points) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        if cfg.init == "points":
            if points is None:
                raise UserError('GaussiansConfig.init="points" needs a point cloud (xyz, rgb)')
            xyz = torch.as_tensor(np.asarray(points[0]), dtype=torch.float32).reshape(-1, 3)
            rgb = torch.as_tensor(np.asarray(points[1]), dtype=torch.float32).reshape(-1, 3)
            if rgb.max() > 1.0:
                rgb = rgb / 255.0  # 8-bit colours
            return xyz, rgb.clamp(0, 1)
        n = cfg.num_points
        dirs = torch.nn.functional.normalize(torch.randn(n, 3, generator=self._gen), dim=-1)
        radius = cfg.init_radius * torch.rand(n, 1, generator=self._gen) ** (1 / 3)
        rgb = 0.5 + 0.05 * (torch.rand(n, 3, generator=self._gen) - 0.5)
        return dirs * radius, rgb

    # ----- activated attributes -----
    @property
    def num_gaussians(self) -> int:
        return self.means.shape[0]

    def get_scales(self) -> torch.Tensor:
        return self.scales.exp()

    def get_opacities(self) -> torch.Tensor:
        return torch.sigmoid(self.opacities)

    def get_colors(self, campos: torch.Tensor | None = None) -> torch.Tensor:
        """(N, 3) for degree 0; (C, N, 3) seen from camera positions campos (C, 3) otherwise."""
        if self.cfg.sh_degree == 0 or campos is None:
            return sh_to_rgb(self.f_dc[:, None], None, 0)
        sh = torch.cat([self.f_dc[:, None], self.f_rest], 1)
        dirs = torch.nn.functional.normalize(self.means[None] - campos[:, None], dim=-1)
        return sh_to_rgb(sh[None].expand(campos.shape[0], -1, -1, -1), dirs, self.cfg.sh_degree)

    # ----- Scene3D -----
    def render(self, cameras: Cameras, size: int, background: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        dev = self.means.device
        c2w = cameras.c2w.to(dev)
        colors = self.get_colors(c2w[:, :3, 3])
        return rasterize_gaussians(
            self.means, self.quats, self.get_scales(), self.get_opacities(), colors,
            torch.linalg.inv(c2w), cameras.intrinsics(size, size).to(dev), size, size,
            background=None if background is None else background.to(dev),
            backend=self.cfg.backend, near_plane=self.cfg.near_plane,
        )

    def param_groups(self) -> list[dict]:
        cfg = self.cfg
        groups = [
            ("means", self.means, cfg.lr_means), ("scales", self.scales, cfg.lr_scales),
            ("quats", self.quats, cfg.lr_quats), ("opacities", self.opacities, cfg.lr_opacities),
            ("f_dc", self.f_dc, cfg.lr_colors),
        ]
        if cfg.sh_degree > 0:
            groups.append(("f_rest", self.f_rest, cfg.lr_colors / 20))
        return [{"params": [p], "lr": lr, "name": name, "eps": 1e-15, "weight_decay": 0.0} for name, p, lr in groups]

    def regularizers(self, out: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        losses = {}
        if "alpha" in out:  # mean rendered opacity: less stray matter (as the field's loss_sparsity)
            losses["loss_sparsity"] = out["alpha"].mean()
        if self.cfg.reg_opacity_entropy:
            p = self.get_opacities().clamp(1e-6, 1 - 1e-6)
            losses["loss_opacity"] = -(p * p.log() + (1 - p) * (1 - p).log()).mean()
        if self.cfg.reg_anisotropy:
            s = self.get_scales()
            ratio = s.max(-1).values / s.min(-1).values
            losses["loss_anisotropy"] = torch.relu(ratio - self.cfg.max_anisotropy).mean()
        return losses

    def after_step(self, step: int, out: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer | None) -> None:
        cfg = self.cfg
        self._update_lr(step, optimizer)
        if step >= cfg.densify_until:
            return
        self.accumulate_grads(out)
        if step >= cfg.densify_from and step % cfg.densify_every == 0:
            self.densify_and_prune(optimizer)
        if cfg.opacity_reset_every > 0 and step > 0 and step % cfg.opacity_reset_every == 0:
            self.reset_opacity(optimizer)

    def _update_lr(self, step: int, optimizer) -> None:
        cfg = self.cfg
        if optimizer is None or cfg.lr_means_final is None or cfg.lr_means_steps <= 0:
            return
        t = min(max(step / cfg.lr_means_steps, 0.0), 1.0)
        lr = math.exp((1 - t) * math.log(cfg.lr_means) + t * math.log(cfg.lr_means_final))
        for group in optimizer.param_groups:
            if any(p is self.means for p in group["params"]):
                group["lr"] = lr

    # ----- export / state -----
    @torch.no_grad()
    def query(self, points: torch.Tensor, chunk: int = 4096, budget: int = 1 << 22) -> tuple[torch.Tensor, torch.Tensor]:
        """density (M,) = sum_i opacity_i * exp(-0.5 * mahalanobis^2), colour (M, 3) density-weighted.

        Contributions beyond 3 max-scales from a centre are dropped, so each chunk of points only visits
        the Gaussians near it (grids in raster order are cheap); at most `budget` pairs are held at once.
        """
        points = points.to(self.means)
        scales = self.get_scales()
        reach = 3 * scales.max(-1).values
        inv = quat_to_rotmat(self.quats) / scales[:, None, :]  # |(x - mu)^T R S^-1|^2 is the Mahalanobis^2
        opac, rgb = self.get_opacities(), self.get_colors()
        density, colour = [], []
        for start in range(0, points.shape[0], chunk):
            pts = points[start:start + chunk]
            lo, hi = pts.min(0).values, pts.max(0).values
            near = ((self.means + reach[:, None] >= lo) & (self.means - reach[:, None] <= hi)).all(-1)
            ids_all = near.nonzero().squeeze(1)
            dens = pts.new_zeros(pts.shape[0])
            col = pts.new_zeros(pts.shape[0], 3)
            step = max(1, budget // pts.shape[0])
            for g in range(0, ids_all.numel(), step):
                ids = ids_all[g:g + step]
                d = pts[:, None, :] - self.means[None, ids]  # (m, k, 3)
                local = torch.einsum("mkj,kji->mki", d, inv[ids])
                w = opac[ids] * torch.exp(-0.5 * local.square().sum(-1))
                w = torch.where(d.norm(dim=-1) <= reach[ids], w, torch.zeros_like(w))
                dens += w.sum(-1)
                col += w @ rgb[ids]
            density.append(dens)
            colour.append(col / dens.clamp_min(1e-8)[:, None])
        return torch.cat(density), torch.cat(colour)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"gaussians/{name}": getattr(self, name).detach() for name in PARAMS}
        tensors["gaussians/grad_accum"] = self.grad_accum
        tensors["gaussians/grad_count"] = self.grad_count
        tensors["gaussians/rng"] = self._gen.get_state()
        return tensors

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Replace every attribute (any N); build the optimizer after this, then load its state."""
        dev = self.means.device
        for name in PARAMS:
            setattr(self, name, nn.Parameter(tensors[f"gaussians/{name}"].to(dev).clone()))
        self._reset_stats()
        if "gaussians/grad_accum" in tensors:
            self.grad_accum.copy_(tensors["gaussians/grad_accum"])
            self.grad_count.copy_(tensors["gaussians/grad_count"])
        if "gaussians/rng" in tensors:
            self._gen.set_state(tensors["gaussians/rng"].cpu())

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], cfg: GaussiansConfig | None = None) -> "GaussianScene":
        """A scene holding the given parameters (keys PARAMS, f_rest (N, (d+1)^2 - 1, 3)); cfg.sh_degree follows
        f_rest. Used by the ply loader (lods.scenes.ply)."""
        n_rest = tensors["f_rest"].shape[1]
        degree = int(round(math.sqrt(n_rest + 1))) - 1
        if (degree + 1) ** 2 - 1 != n_rest or not 0 <= degree <= 3:
            raise UserError(f"{n_rest} SH coefficients per colour channel do not match an SH degree 0..3")
        cfg = dataclasses.replace(cfg or GaussiansConfig(), sh_degree=degree, init="ball")
        scene = cls(dataclasses.replace(cfg, num_points=1, init_scale=0.01))  # a cheap placeholder, overwritten below
        scene.cfg = cfg
        scene.load_state_tensors({f"gaussians/{k}": tensors[k].float().contiguous() for k in PARAMS})
        return scene
