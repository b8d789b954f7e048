"""Meshes from any Scene3D: its `query` density on a grid, marching cubes, colours at the vertices; GLB files.

The iso-level: the scene's own `mesh_threshold` attribute when it has one (the radiance field's density
scale is arbitrary: its level is a density, see FieldConfig.mesh_threshold), otherwise 0.5, since
`Scene3D.query` returns an occupancy-like value (the Gaussian scene: Σ opacity · falloff, 1 deep inside
opaque matter, 0 outside), where 0.5 is the boundary.
"""

from __future__ import annotations

from pathlib import Path

import mcubes
import numpy as np
import torch
import trimesh

from ..errors import UserError
from ..scenes.base import Scene3D
from ..utils.io import atomic_write_bytes

DEFAULT_LEVEL = 0.5

# glTF is +y up; the world is +z up: (x, y, z) -> (x, z, -y)
Z_UP_TO_Y_UP = np.array([[1, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]], dtype=np.float64)


class EmptyMeshError(UserError, ValueError):
    """Nothing in the scene reaches the iso-level: there is no surface to export."""


def _device(scene: Scene3D) -> torch.device:
    p = next(scene.parameters(), None)
    if p is None:
        p = next(scene.buffers(), None)
    return p.device if p is not None else torch.device("cpu")


@torch.no_grad()
def query_chunked(scene: Scene3D, points: torch.Tensor, chunk: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
    """`scene.query` on many points (N, 3) in chunks; density (N,) and colour (N, 3) on the CPU."""
    device = _device(scene)
    dens, cols = [], []
    for s in range(0, points.shape[0], chunk):
        d, c = scene.query(points[s : s + chunk].to(device))
        dens.append(d.reshape(-1).float().cpu())
        cols.append(c.reshape(-1, 3).float().cpu())
    if not dens:
        return torch.zeros(0), torch.zeros(0, 3)
    return torch.cat(dens), torch.cat(cols)


def density_grid(scene: Scene3D, resolution: int = 64, bound: float = 1.0, chunk: int = 65536) -> torch.Tensor:
    """Density (R, R, R) at the corners of a grid over [-bound, bound]³, indexed [x, y, z]."""
    ax = torch.linspace(-bound, bound, resolution)
    pts = torch.stack(torch.meshgrid(ax, ax, ax, indexing="ij"), -1).reshape(-1, 3)
    return query_chunked(scene, pts, chunk)[0].reshape(resolution, resolution, resolution)


def extract_mesh(
    scene: Scene3D, resolution: int = 64, bound: float = 1.0, threshold: float | None = None, chunk: int = 65536
) -> trimesh.Trimesh:
    """A closed, outward-facing mesh of where `scene.query` density exceeds `threshold`, with vertex colours.

    Raises EmptyMeshError when no grid point reaches the threshold.
    """
    if threshold is None:
        threshold = float(getattr(scene, "mesh_threshold", DEFAULT_LEVEL))
    dens = density_grid(scene, resolution, bound, chunk).numpy().astype(np.float64)
    dens = np.nan_to_num(dens, nan=0.0, posinf=np.finfo(np.float64).max)
    peak = float(dens.max())
    if peak <= threshold:
        raise EmptyMeshError(
            f"no surface to export: the highest density on the {resolution}³ grid is {peak:.4g}, below the "
            f"iso-level {threshold:.4g} (pass a lower `threshold`)"
        )
    # a border below the level closes surfaces cut by the grid's faces
    floor = min(float(dens.min()), threshold) - 1.0
    padded = np.pad(dens, 1, constant_values=floor)
    verts, faces = mcubes.marching_cubes(padded, threshold)
    if len(faces) == 0:
        raise EmptyMeshError(f"marching cubes found no surface at iso-level {threshold:.4g}")
    step = 2.0 * bound / (resolution - 1)
    # vertices interpolated towards the border fall outside the box: clip them onto its faces (a flat cap)
    verts = np.clip((verts - 1.0) * step - bound, -bound, bound)
    # PyMCubes winds triangles counter-clockwise seen from the low side: normals face out of the dense region
    faces = faces.astype(np.int64)
    _, colors = query_chunked(scene, torch.as_tensor(verts, dtype=torch.float32), chunk)
    rgba = np.concatenate(
        [(colors.clamp(0, 1).numpy() * 255).round().astype(np.uint8), np.full((len(verts), 1), 255, np.uint8)], 1
    )
    return trimesh.Trimesh(vertices=verts, faces=faces, vertex_colors=rgba, process=False)


def save_glb(mesh: trimesh.Trimesh, path, y_up: bool = True) -> Path:
    """Write `mesh` as binary glTF atomically. With `y_up` the z-up world is turned to glTF's +y up (viewers
    then show the object standing)."""
    path = Path(path)
    out = mesh.copy()
    if y_up:
        out.apply_transform(Z_UP_TO_Y_UP)
    atomic_write_bytes(path, out.export(file_type="glb"))
    return path
