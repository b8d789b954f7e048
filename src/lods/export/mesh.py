"""Meshes from any Scene3D: its `query` density on a grid, a cleaned isosurface, colours at the vertices; GLB files.

The iso-level: an explicit `threshold`, else the scene's own `mesh_threshold` attribute when it has one (the
radiance field's density scale is arbitrary: its level is a density, see FieldConfig.mesh_threshold), else one
chosen from the field: the grid is smoothed (a Gaussian of `smooth` voxels) and the level is Otsu's threshold
between its empty and its occupied voxels (clamped to [0.25, 1]). A fixed 0.5 on the raw Gaussian field left tunnels and fragments where
the splat is thin. Cleaning then keeps the large connected pieces (floaters removed), closes small tunnels and fills
enclosed voids; an optional `max_faces` decimates the result (quadric decimation).

glb: +y up (the world is +z up), a material (metallic 0, roughness 0.8: glTF's default metallic 1 renders near
black), vertex normals, and COLOR_0 in linear RGB as glTF defines it (the scene's colours are sRGB).
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

ROUGHNESS = 0.8
# Scene3D.query is occupancy-like (1 deep inside opaque matter): below a quarter nothing is solid, and a level
# above 1 would cut into solid matter where Gaussians pile up (their sum exceeds 1)
MIN_AUTO_LEVEL, MAX_AUTO_LEVEL = 0.25, 1.0

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


def otsu_level(values: np.ndarray, bins: int = 256) -> float:
    """The threshold maximising the between-class variance of `values` (Otsu)."""
    hist, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist).astype(np.float64)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mean0 = m0 / np.maximum(w0, 1)
    mean1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = np.where((w0 > 0) & (w1 > 0), w0 * w1 * (mean0 - mean1) ** 2, -1.0)
    return float(edges[np.argmax(between) + 1])


def auto_level(dens: np.ndarray) -> float:
    """Otsu's level over the voxels above 1% of the peak (the empty bulk of the grid would swamp it), clamped to
    [MIN_AUTO_LEVEL, MAX_AUTO_LEVEL]."""
    occupied = dens[dens > 0.01 * dens.max()]
    level = otsu_level(occupied) if occupied.size > 1 else 0.0
    return min(max(level, MIN_AUTO_LEVEL), MAX_AUTO_LEVEL)


def clean_field(field: np.ndarray, keep_fraction: float = 0.05, close_iterations: int = 2) -> np.ndarray:
    """A signed field (> 0 inside) with pieces smaller than `keep_fraction` of the largest removed, small tunnels
    closed (a morphological closing of `close_iterations` voxels) and enclosed voids filled; elsewhere unchanged."""
    from scipy import ndimage

    inside = field > 0
    labels, n = ndimage.label(inside)
    if n == 0:
        return field
    sizes = ndimage.sum(inside, labels, np.arange(1, n + 1))
    keep = np.isin(labels, 1 + np.flatnonzero(sizes >= keep_fraction * sizes.max()))
    solid = keep
    if close_iterations > 0:
        cross = ndimage.generate_binary_structure(3, 1)
        solid = ndimage.binary_closing(np.pad(keep, close_iterations), cross, iterations=close_iterations)
        solid = solid[(slice(close_iterations, -close_iterations),) * 3] | keep
    solid = ndimage.binary_fill_holes(solid)
    eps = 1e-3 * max(float(np.abs(field).max()), 1e-12)
    out = np.where(inside & ~keep, -eps, field)  # floaters out
    return np.where(solid & (out <= 0), eps, out)  # tunnels and voids in


def extract_mesh(
    scene: Scene3D, resolution: int = 64, bound: float = 1.0, threshold: float | None = None, chunk: int = 65536,
    smooth: float = 1.0, clean: bool = True, max_faces: int | None = None, colors: bool = True,
) -> trimesh.Trimesh:
    """A closed, outward-facing mesh of where `scene.query` density exceeds the iso-level, with vertex colours
    (sRGB bytes, as the scene's colours). See the module's docstring for the level and the cleaning.

    Raises EmptyMeshError when no grid point reaches the level.
    """
    from scipy import ndimage

    raw = density_grid(scene, resolution, bound, chunk).numpy().astype(np.float64)
    raw = np.nan_to_num(raw, nan=0.0, posinf=np.finfo(np.float32).max)
    dens = ndimage.gaussian_filter(raw, smooth, mode="nearest") if smooth > 0 else raw
    if threshold is None:
        threshold = getattr(scene, "mesh_threshold", None)
    level = float(threshold) if threshold is not None else auto_level(dens)
    peak = float(dens.max())
    if peak <= level:
        raise EmptyMeshError(
            f"no surface to export: the highest density on the {resolution}³ grid is {peak:.4g}, below the "
            f"iso-level {level:.4g} (pass a lower `threshold`)"
        )
    field = dens - level
    if clean:
        field = clean_field(field)
    # a border below the level closes surfaces cut by the grid's faces
    padded = np.pad(field, 1, constant_values=min(float(field.min()), 0.0) - 1.0)
    verts, faces = mcubes.marching_cubes(padded, 0.0)
    if len(faces) == 0:
        raise EmptyMeshError(f"marching cubes found no surface at iso-level {level:.4g}")
    step = 2.0 * bound / (resolution - 1)
    # vertices interpolated towards the border fall outside the box: clip them onto its faces (a flat cap)
    verts = np.clip((verts - 1.0) * step - bound, -bound, bound)
    # PyMCubes winds triangles counter-clockwise seen from the low side: normals face out of the dense region
    mesh = trimesh.Trimesh(vertices=verts, faces=faces.astype(np.int64), process=False)
    if max_faces is not None and len(mesh.faces) > max_faces:
        mesh = decimate(mesh, max_faces)
    mesh.metadata["iso_level"] = level
    if colors:
        _, rgb = query_chunked(scene, torch.as_tensor(mesh.vertices, dtype=torch.float32), chunk)
        mesh.visual.vertex_colors = np.concatenate(
            [(rgb.clamp(0, 1).numpy() * 255).round().astype(np.uint8), np.full((len(mesh.vertices), 1), 255, np.uint8)], 1
        )
    return mesh


def decimate(mesh: trimesh.Trimesh, max_faces: int) -> trimesh.Trimesh:
    """Quadric decimation (fast-simplification) to at most `max_faces` faces; colours are not kept."""
    if max_faces < 4:
        raise UserError(f"a face budget must be at least 4, got {max_faces}")
    out = mesh.simplify_quadric_decimation(face_count=max_faces)
    return trimesh.Trimesh(out.vertices, out.faces, process=False)


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB values in [0, 1] to linear RGB (the sRGB transfer function)."""
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


def material(texture=None) -> trimesh.visual.material.PBRMaterial:
    """A dielectric, fairly rough material (with a colour texture when given: a PIL image, sRGB)."""
    return trimesh.visual.material.PBRMaterial(
        name="lods", baseColorFactor=[255, 255, 255, 255], baseColorTexture=texture, metallicFactor=0.0,
        roughnessFactor=ROUGHNESS, doubleSided=False,
    )


def to_y_up(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    out = mesh.copy()
    out.apply_transform(Z_UP_TO_Y_UP)
    return out


def glb_ready(mesh: trimesh.Trimesh, y_up: bool = True) -> trimesh.Trimesh:
    """A copy ready for glTF: +y up, the material, and vertex colours (if any) converted to linear COLOR_0."""
    out = to_y_up(mesh) if y_up else mesh.copy()
    if isinstance(mesh.visual, trimesh.visual.TextureVisuals) and mesh.visual.uv is not None:
        out.visual = trimesh.visual.TextureVisuals(uv=mesh.visual.uv, material=mesh.visual.material)
        return out
    visual = trimesh.visual.TextureVisuals(material=material())
    if mesh.visual.kind == "vertex":
        rgba = np.asarray(mesh.visual.vertex_colors, dtype=np.float64) / 255.0
        rgba[:, :3] = srgb_to_linear(rgba[:, :3])
        visual.vertex_attributes["color"] = (rgba * 255).round().astype(np.uint8)
    out.visual = visual
    return out


def save_glb(mesh: trimesh.Trimesh, path, y_up: bool = True) -> Path:
    """Write `mesh` as binary glTF atomically: see `glb_ready`. With `y_up` the z-up world is turned to glTF's
    +y up (viewers then show the object standing)."""
    path = Path(path)
    out = glb_ready(mesh, y_up)
    atomic_write_bytes(path, out.export(file_type="glb", include_normals=True))
    return path
