"""Faces, boundary edges (holes), components and size of a glb: `python scripts/mesh_stats.py FILE.glb ...`."""

import sys
from pathlib import Path

import numpy as np
import trimesh


def stats(path: str) -> dict:
    mesh = trimesh.load(path, force="mesh", process=False)
    # weld duplicated vertices (UV seams, glTF export) so only real holes count as boundaries
    welded = trimesh.Trimesh(mesh.vertices, mesh.faces, process=True)
    edges = np.sort(welded.edges, axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return {
        "file": path, "bytes": Path(path).stat().st_size, "faces": len(mesh.faces), "vertices": len(mesh.vertices),
        "boundary_edges": int((counts == 1).sum()), "non_manifold_edges": int((counts > 2).sum()),
        "components": len(welded.split(only_watertight=False)), "watertight": bool(welded.is_watertight),
        "euler": int(welded.euler_number),
    }


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(stats(p))
