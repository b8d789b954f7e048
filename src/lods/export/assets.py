"""The mesh files of a finished run: mesh.glb (vertex colours, or textured with mesh.obj/.mtl/.png beside it)."""

from __future__ import annotations

from pathlib import Path

from ..scenes.base import Scene3D
from .mesh import EmptyMeshError, extract_mesh, save_glb


def export_mesh(scene: Scene3D, out: Path, export_cfg) -> dict:
    """Write the run's mesh as `export_cfg` (pipelines.run_config.ExportConfig) asks; returns metrics.json's outputs
    entries: {"mesh": "mesh.glb", ...} or {"mesh_error": why} when the scene has no surface."""
    out = Path(out)
    try:
        mesh = extract_mesh(scene, resolution=export_cfg.mesh_resolution, max_faces=export_cfg.mesh_max_faces,
                            colors=export_cfg.mesh != "textured")
    except EmptyMeshError as e:
        return {"mesh_error": str(e)}
    entries = {"mesh_faces": int(len(mesh.faces)), "mesh_iso_level": float(mesh.metadata["iso_level"])}
    if export_cfg.mesh == "textured":
        from .texture import save_textured, textured_mesh

        paths = save_textured(textured_mesh(scene, mesh, export_cfg.texture_size), out)
        entries.update({"mesh": paths["glb"].name, "mesh_obj": paths["obj"].name, "texture": paths["png"].name})
        return entries
    save_glb(mesh, out / "mesh.glb")
    entries["mesh"] = "mesh.glb"
    return entries
