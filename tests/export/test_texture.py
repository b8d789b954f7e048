"""--mesh textured: an unwrapped mesh whose baked texture holds the scene's colours; glb + obj/mtl/png."""

import json
import struct

import numpy as np
import torch
import trimesh

from lods.export.mesh import extract_mesh
from lods.export.texture import rasterize_uv, save_textured, textured_mesh
from lods.scenes.base import Scene3D


class TwoColourBall(Scene3D):
    """A ball of radius 0.4: red above z = 0, blue below."""

    def query(self, points):
        occ = (0.5 + (0.4 - points.norm(dim=-1)) * 4.0).clamp(0, 1)
        rgb = torch.where(points[:, 2:3] > 0, torch.tensor([1.0, 0, 0]), torch.tensor([0, 0, 1.0]))
        return occ, rgb


def sample(image, uv):
    arr = np.asarray(image.convert("RGB"))
    h, w = arr.shape[:2]
    cols = np.clip((uv[:, 0] * w).astype(int), 0, w - 1)
    rows = np.clip(((1 - uv[:, 1]) * h).astype(int), 0, h - 1)
    return arr[rows, cols]


def test_rasterize_uv_covers_a_triangle_with_barycentrics():
    uv = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    ids, w = rasterize_uv(np.array([[0, 1, 2]]), uv, 16)
    assert 0.4 < (ids == 0).mean() < 0.65  # half the square
    rows, cols = np.nonzero(ids == 0)
    u = w[rows, cols] @ uv[:, 0]
    assert np.allclose(u, (cols + 0.5) / 16, atol=0.05)


def test_textured_glb_and_obj(tmp_path):
    scene = TwoColourBall()
    mesh = textured_mesh(scene, extract_mesh(scene, resolution=32, bound=0.6, colors=False), size=128)
    top = mesh.vertices[:, 2] > 0.08
    texels = sample(mesh.visual.material.baseColorTexture, mesh.visual.uv)
    assert (texels[top] == [255, 0, 0]).all(1).mean() > 0.95
    assert (texels[mesh.vertices[:, 2] < -0.08] == [0, 0, 255]).all(1).mean() > 0.95

    paths = save_textured(mesh, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mesh.glb", "mesh.mtl", "mesh.obj", "mesh.png"]
    data = paths["glb"].read_bytes()
    doc = json.loads(data[20:20 + struct.unpack("<I", data[12:16])[0]])
    prim = doc["meshes"][0]["primitives"][0]
    assert {"POSITION", "NORMAL", "TEXCOORD_0"} <= set(prim["attributes"])
    pbr = doc["materials"][prim["material"]]["pbrMetallicRoughness"]
    assert pbr["metallicFactor"] == 0.0 and "baseColorTexture" in pbr and doc["images"]

    loaded = trimesh.load(paths["glb"], force="mesh")
    assert loaded.visual.uv is not None and loaded.visual.material.baseColorTexture.size == (128, 128)
    up = loaded.vertices[:, 1] > 0.08  # +y up in the file
    assert (sample(loaded.visual.material.baseColorTexture, loaded.visual.uv)[up] == [255, 0, 0]).all(1).mean() > 0.95

    obj = trimesh.load(paths["obj"], force="mesh")
    assert len(obj.faces) == len(mesh.faces) and obj.visual.uv is not None
    assert (sample(obj.visual.material.image, obj.visual.uv)[obj.vertices[:, 1] > 0.08] == [255, 0, 0]).all(1).mean() > 0.95


def test_export_mesh_follows_the_run_config(tmp_path):
    import dataclasses

    import pytest

    from lods.errors import UserError
    from lods.export.assets import export_mesh
    from lods.pipelines.run_config import ExportConfig, GenerateConfig

    cfg = ExportConfig(mesh_resolution=24, mesh="textured", texture_size=32, mesh_max_faces=300)
    entries = export_mesh(TwoColourBall(), tmp_path, cfg)
    assert entries["mesh"] == "mesh.glb" and entries["texture"] == "mesh.png" and entries["mesh_faces"] <= 300
    vertex = export_mesh(TwoColourBall(), tmp_path / "v", dataclasses.replace(cfg, mesh="vertex"))
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == ["mesh.glb"] and "texture" not in vertex
    bad = GenerateConfig(prompt="a red cube", export=dataclasses.replace(cfg, mesh="pointcloud"))
    with pytest.raises(UserError, match="unknown --mesh"):
        bad.validate()
