"""3D Gaussian Splatting ply files, +y up.

The file is the standard 3DGS layout (x y z nx ny nz f_dc_0..2 f_rest_* opacity scale_0..2 rot_0..3, f_rest
channel-major, opacity as a logit, scales as logs, rot as wxyz). lods works in a +z-up world; files are +y up, as
glTF (mesh.glb) and three.js-based splat viewers expect: a point (x, y, z) is written as (x, z, -y), and each
Gaussian's rotation and its higher-order SH coefficients are rotated with it. `load_ply` undoes this, so a
written file reads back into the same parameters (positions, scales, opacities, f_dc and the first SH band bit for
bit; quaternions and SH bands 2-3, whose rotation is not a signed permutation, to float32 rounding).
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .gaussians import PARAMS, GaussiansConfig, GaussianScene, sh_basis
from ..utils.io import atomic_save

# world (+z up) -> file (+y up): (x, y, z) -> (x, z, -y), a -90° turn about x
Z_UP_TO_Y_UP = np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]], dtype=np.float64)
_QUAT_Z_UP_TO_Y_UP = np.array([math.sqrt(0.5), -math.sqrt(0.5), 0.0, 0.0])  # wxyz of the same turn


def _quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], -1)


@lru_cache(maxsize=8)
def sh_rotation(degree: int, to_file: bool = True) -> np.ndarray:
    """The ((d+1)^2 - 1)² matrix D taking the rest SH coefficients of a colour function in the world frame to those
    of the same function in the file frame (to_file) or back: f'(d) = f(Rᵀd) ⇔ c' = D c, band by band."""
    rot = Z_UP_TO_Y_UP if to_file else Z_UP_TO_Y_UP.T
    g = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(512, 3, generator=g, dtype=torch.float64), dim=-1)
    y_new = sh_basis(dirs, degree).numpy()  # basis at d in the new frame
    y_old = sh_basis(dirs @ torch.from_numpy(rot), degree).numpy()  # basis at Rᵀd (row vectors: d Rᵀᵀ... = Rᵀ d)
    # Y(d) c' = Y(Rᵀ d) c for all d
    full = np.linalg.lstsq(y_new, y_old, rcond=None)[0]
    near = np.round(full)
    full[np.abs(full - near) < 1e-9] = near[np.abs(full - near) < 1e-9]  # exact 0 / ±1 where they are
    return full[1:, 1:]


def _rotate_sh(f_rest: np.ndarray, to_file: bool) -> np.ndarray:
    """f_rest (N, K, 3) in float64, rotated band-wise."""
    k = f_rest.shape[1]
    if k == 0:
        return f_rest
    degree = int(round(math.sqrt(k + 1))) - 1
    return np.einsum("ij,njc->nic", sh_rotation(degree, to_file), f_rest)


def _to_file_frame(t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = dict(t)
    out["means"] = t["means"] @ Z_UP_TO_Y_UP.T
    out["quats"] = _quat_mul(_QUAT_Z_UP_TO_Y_UP, t["quats"])
    out["f_rest"] = _rotate_sh(t["f_rest"], to_file=True)
    return out


def _to_world_frame(t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out = dict(t)
    out["means"] = t["means"] @ Z_UP_TO_Y_UP  # the inverse of a rotation is its transpose
    conj = _QUAT_Z_UP_TO_Y_UP * np.array([1.0, -1.0, -1.0, -1.0])
    out["quats"] = _quat_mul(conj, t["quats"])
    out["f_rest"] = _rotate_sh(t["f_rest"], to_file=False)
    return out


def write_ply(tensors: dict[str, torch.Tensor], path, pad_sh_degree: int = 3) -> Path:
    """Write Gaussian parameters (PARAMS keys, world frame; f_rest (N, K, 3)) as a +y-up 3DGS ply, atomically.

    SH bands above the data's degree are written as zeros up to `pad_sh_degree` (3 = the 45 f_rest columns that
    the reference 3DGS viewers expect); `load_ply` drops all-zero top bands again.
    """
    from plyfile import PlyData, PlyElement

    t = {k: tensors[k].detach().cpu().double().numpy() for k in PARAMS}
    t = _to_file_frame(t)
    n = t["means"].shape[0]
    f_rest = t["f_rest"]
    degree = int(round(math.sqrt(f_rest.shape[1] + 1))) - 1
    pad = (max(pad_sh_degree, degree) + 1) ** 2 - 1 - f_rest.shape[1]
    if pad > 0:
        f_rest = np.concatenate([f_rest, np.zeros((n, pad, 3))], 1)
    rest = f_rest.transpose(0, 2, 1).reshape(n, -1)  # channel-major, as 3DGS writes it
    columns = [
        *[(c, t["means"][:, i]) for i, c in enumerate("xyz")],
        *[(c, np.zeros(n)) for c in ("nx", "ny", "nz")],
        *[(f"f_dc_{i}", t["f_dc"][:, i]) for i in range(3)],
        *[(f"f_rest_{i}", rest[:, i]) for i in range(rest.shape[1])],
        ("opacity", t["opacities"]),
        *[(f"scale_{i}", t["scales"][:, i]) for i in range(3)],
        *[(f"rot_{i}", t["quats"][:, i]) for i in range(4)],
    ]
    data = np.empty(n, dtype=[(name, "f4") for name, _ in columns])
    for name, values in columns:
        data[name] = values
    ply = PlyData([PlyElement.describe(data, "vertex")])
    path = Path(path)
    atomic_save(path, lambda tmp: ply.write(str(tmp)))
    return path


def save_ply(scene: GaussianScene, path, pad_sh_degree: int = 3) -> Path:
    """`write_ply` of a scene's parameters."""
    return write_ply({k: getattr(scene, k) for k in PARAMS}, path, pad_sh_degree)


def load_ply(path) -> dict[str, torch.Tensor]:
    """Read a +y-up 3DGS ply (SH degree 0..3) into float32 tensors in the world frame: means (N, 3), scales (N, 3)
    log, quats (N, 4) wxyz, opacities (N,) logit, f_dc (N, 3), f_rest (N, (d+1)^2 - 1, 3) with all-zero top
    bands dropped. Raises UserError on a file that is not a 3DGS ply."""
    from plyfile import PlyData, PlyParseError

    path = Path(path)
    try:
        ply = PlyData.read(str(path))
        v = ply["vertex"]
    except FileNotFoundError:
        raise
    except (PlyParseError, KeyError, ValueError, IndexError, EOFError) as e:
        raise UserError(f"{path}: not a readable ply file ({e})") from None
    names = [p.name for p in v.properties]
    needed = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", *[f"scale_{i}" for i in range(3)],
              *[f"rot_{i}" for i in range(4)]]
    missing = [k for k in needed if k not in names]
    if missing:
        raise UserError(f"{path}: not a 3D Gaussian Splatting ply (missing {', '.join(missing)})")
    n_rest = sum(name.startswith("f_rest_") for name in names)
    degree = int(round(math.sqrt(n_rest // 3 + 1))) - 1
    if n_rest % 3 or (degree + 1) ** 2 - 1 != n_rest // 3 or degree > 3:
        raise UserError(f"{path}: {n_rest} f_rest properties do not match an SH degree 0..3")

    def cols(*keys):
        return np.stack([np.asarray(v[k], dtype=np.float64) for k in keys], -1)

    n = len(v["x"])
    rest = cols(*[f"f_rest_{i}" for i in range(n_rest)]) if n_rest else np.zeros((n, 0))
    rest = rest.reshape(n, 3, -1).transpose(0, 2, 1)  # (n, coefficients, 3)
    while degree > 0 and not rest[:, degree**2 - 1:].any():  # zero bands, as write_ply pads them
        degree -= 1
        rest = rest[:, : (degree + 1) ** 2 - 1]
    t = _to_world_frame({
        "means": cols("x", "y", "z"),
        "scales": cols("scale_0", "scale_1", "scale_2"),
        "quats": cols("rot_0", "rot_1", "rot_2", "rot_3"),
        "opacities": cols("opacity")[:, 0],
        "f_dc": cols("f_dc_0", "f_dc_1", "f_dc_2"),
        "f_rest": rest,
    })
    return {k: torch.from_numpy(np.ascontiguousarray(t[k], dtype=np.float32)) for k in PARAMS}


def load_gaussians(path, cfg: GaussiansConfig | None = None) -> GaussianScene:
    """A GaussianScene from a ply written by `save_ply` (or any +y-up 3DGS ply); cfg.sh_degree follows the file."""
    return GaussianScene.from_tensors(load_ply(path), cfg)
