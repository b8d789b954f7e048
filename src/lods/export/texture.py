"""Textured meshes, DreamGaussian-style: UV-unwrap the mesh (xatlas), bake the scene's colour into a texture (each
texel's surface point queried in the scene: the Gaussians' or the field's colour there), write glb and obj+mtl+png.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import trimesh
from PIL import Image, ImageDraw

from ..errors import UserError
from ..scenes.base import Scene3D
from ..utils.io import atomic_write_bytes, atomic_write_text
from .mesh import glb_ready, material, query_chunked, to_y_up


def unwrap(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """xatlas: (vertices (M, 3), faces (F, 3), uv (M, 2) in [0, 1], v up); seams duplicate vertices."""
    try:
        import xatlas
    except ImportError as e:  # a dependency of the package; missing only in a broken install
        raise UserError(f"--mesh textured needs xatlas ({e}); reinstall lods") from None
    vmapping, indices, uvs = xatlas.parametrize(np.asarray(mesh.vertices, np.float32), np.asarray(mesh.faces, np.uint32))
    return np.asarray(mesh.vertices)[vmapping], indices.astype(np.int64), uvs.astype(np.float64)


def rasterize_uv(faces: np.ndarray, uv: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Which face covers each texel of a size² texture, and the texel centre's barycentric coordinates in it.
    Row 0 is the top of the image (v = 1). Returns face ids (size, size), -1 where none, and weights (size, size, 3)."""
    img = Image.new("I", (size, size), -1)
    draw = ImageDraw.Draw(img)
    px = np.stack([uv[:, 0] * size, (1.0 - uv[:, 1]) * size], -1)  # pixel corners: texel centres at +0.5
    for f, tri in enumerate(faces):
        draw.polygon([tuple(px[i]) for i in tri], fill=f)
    ids = np.asarray(img, dtype=np.int64)
    rows, cols = np.nonzero(ids >= 0)
    fid = ids[rows, cols]
    a, b, c = (px[faces[fid, k]] for k in range(3))
    p = np.stack([cols + 0.5, rows + 0.5], -1)
    v0, v1, v2 = b - a, c - a, p - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]
    den = np.where(np.abs(den) < 1e-12, 1e-12, den)
    w1 = (v2[:, 0] * v1[:, 1] - v1[:, 0] * v2[:, 1]) / den
    w2 = (v0[:, 0] * v2[:, 1] - v2[:, 0] * v0[:, 1]) / den
    w = np.clip(np.stack([1 - w1 - w2, w1, w2], -1), 0, 1)  # texels on an edge's outer side: its nearest point
    weights = np.zeros((size, size, 3))
    weights[rows, cols] = w / w.sum(-1, keepdims=True).clip(1e-12)
    return ids, weights


def dilate(texture: np.ndarray, covered: np.ndarray) -> np.ndarray:
    """Fill uncovered texels with the nearest covered texel's colour (no dark seams where sampling bleeds)."""
    from scipy import ndimage

    if covered.all() or not covered.any():
        return texture
    _, (ri, ci) = ndimage.distance_transform_edt(~covered, return_indices=True)
    return texture[ri, ci]


def bake_texture(scene: Scene3D, vertices: np.ndarray, faces: np.ndarray, uv: np.ndarray, size: int = 512,
                 chunk: int = 65536) -> Image.Image:
    """An RGB texture (sRGB, as the scene's colours): the scene's colour at each texel's surface point."""
    ids, weights = rasterize_uv(faces, uv, size)
    covered = ids >= 0
    rows, cols = np.nonzero(covered)
    tri = vertices[faces[ids[rows, cols]]]  # (K, 3, 3)
    points = np.einsum("kj,kjd->kd", weights[rows, cols], tri)
    _, rgb = query_chunked(scene, torch.as_tensor(points, dtype=torch.float32), chunk)
    texture = np.ones((size, size, 3))
    texture[rows, cols] = rgb.clamp(0, 1).numpy()
    return Image.fromarray((dilate(texture, covered) * 255).round().astype(np.uint8), "RGB")


def textured_mesh(scene: Scene3D, mesh: trimesh.Trimesh, size: int = 512) -> trimesh.Trimesh:
    """`mesh` unwrapped, with the scene's colour baked into a size² texture (TextureVisuals + PBR material)."""
    if size < 16:
        raise UserError(f"the texture size must be at least 16, got {size}")
    vertices, faces, uv = unwrap(mesh)
    image = bake_texture(scene, vertices, faces, uv, size)
    return trimesh.Trimesh(vertices, faces, process=False,
                           visual=trimesh.visual.TextureVisuals(uv=uv, material=material(image)))


def save_textured(mesh: trimesh.Trimesh, out_dir, stem: str = "mesh", y_up: bool = True) -> dict[str, Path]:
    """Write STEM.glb (baseColorTexture embedded) and STEM.obj + STEM.mtl + STEM.png beside it, all +y up."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    glb = glb_ready(mesh, y_up)
    paths = {"glb": out_dir / f"{stem}.glb", "obj": out_dir / f"{stem}.obj", "mtl": out_dir / f"{stem}.mtl",
             "png": out_dir / f"{stem}.png"}
    atomic_write_bytes(paths["glb"], glb.export(file_type="glb", include_normals=True))

    turned = to_y_up(mesh) if y_up else mesh
    image = mesh.visual.material.baseColorTexture
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    atomic_write_bytes(paths["png"], buf.getvalue())
    atomic_write_text(paths["mtl"], (
        f"newmtl {stem}\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nNs 10\nillum 1\nmap_Kd {paths['png'].name}\n"))
    v, f, t, n = turned.vertices, turned.faces + 1, mesh.visual.uv, turned.vertex_normals
    lines = [f"# lods textured mesh, +y up\nmtllib {paths['mtl'].name}\nusemtl {stem}\n"]
    lines += [f"v {a:.6f} {b:.6f} {c:.6f}\n" for a, b, c in v]
    lines += [f"vt {a:.6f} {b:.6f}\n" for a, b in t]
    lines += [f"vn {a:.5f} {b:.5f} {c:.5f}\n" for a, b, c in n]
    lines += [f"f {a}/{a}/{a} {b}/{b}/{b} {c}/{c}/{c}\n" for a, b, c in f]
    atomic_write_text(paths["obj"], "".join(lines))
    return paths
