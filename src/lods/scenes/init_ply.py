"""Gaussians initialised from a user's ply: a splat (the 3DGS layout, +y up, that lods.scenes.ply writes; read back
into the +z-up world) or a plain point cloud (x y z with red green blue, e.g. a Shap-E sample, taken as it is),
positions multiplied by `scale`."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .gaussians import GaussiansConfig, GaussianScene


def scene_from_ply(path: str | Path, cfg: GaussiansConfig, scale: float = 1.0, seed: int | None = None) -> GaussianScene:
    """A `GaussianScene` from `path`; a splat keeps its attributes (scales grow with `scale`), a point cloud gets
    cfg's initial opacity and nearest-neighbour scales, colours from its red/green/blue (grey when absent)."""
    from plyfile import PlyData

    try:
        vertex = PlyData.read(str(path))["vertex"]
    except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
        raise UserError(f"--init-ply {path}: not a readable ply with a vertex element ({type(e).__name__})") from None
    names = {p.name for p in vertex.properties}
    if not {"x", "y", "z"} <= names or len(vertex) == 0:
        raise UserError(f"--init-ply {path}: needs vertices with x, y, z")
    if "f_dc_0" in names:
        from .ply import load_gaussians

        scene = load_gaussians(path, dataclasses.replace(cfg, seed=cfg.seed if seed is None else seed))
        with torch.no_grad():
            scene.means.mul_(scale)
            scene.scales.add_(math.log(scale))
        return scene
    xyz = np.stack([np.asarray(vertex[k], dtype=np.float32) for k in ("x", "y", "z")], -1) * scale
    if {"red", "green", "blue"} <= names:
        rgb = np.stack([np.asarray(vertex[k], dtype=np.float32) for k in ("red", "green", "blue")], -1)
        if vertex["red"].dtype.kind in "ui" or rgb.max() > 1.0:
            rgb = rgb / 255.0
    else:
        rgb = np.full_like(xyz, 0.5)
    if not np.isfinite(xyz).all():
        raise UserError(f"--init-ply {path}: positions are not finite")
    return GaussianScene(dataclasses.replace(cfg, init="points"), points=(torch.from_numpy(xyz), torch.from_numpy(rgb)), seed=seed)
