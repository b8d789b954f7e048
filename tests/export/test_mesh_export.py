import numpy as np
import pytest
import torch
import trimesh

from lods.errors import UserError
from lods.export.mesh import EmptyMeshError, extract_mesh, save_glb
from lods.scenes.base import Scene3D
from lods.scenes.field import FieldConfig, RadianceField

RED, BLUE = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])


def load_glb(path) -> trimesh.Trimesh:
    """The single mesh of a glb, as stored (force="mesh" would drop COLOR_0 next to a material)."""
    scene = trimesh.load(path)
    (mesh,) = scene.geometry.values()
    return mesh.apply_transform(scene.graph[scene.graph.nodes_geometry[0]][0])


class Ball(Scene3D):
    """Occupancy 1 inside radius r and 0 outside, linear over a thin shell (0.5 exactly at r); red above z = 0,
    blue below."""

    def __init__(self, radius=0.4, center=(0.0, 0.0, 0.0), empty=False):
        super().__init__()
        self.radius, self.center, self.empty = radius, torch.tensor(center), empty

    def query(self, points):
        r = (points - self.center).norm(dim=-1)
        occ = (0.5 + (self.radius - r) * 4.0).clamp(0, 1)
        if self.empty:
            occ = occ * 0.2
        rgb = torch.where((points[:, 2:3] > self.center[2]), RED, BLUE)
        return occ, rgb


def test_ball_mesh_radius_colours_and_orientation():
    mesh = extract_mesh(Ball(0.4), resolution=40, bound=0.6)
    radii = np.linalg.norm(mesh.vertices, axis=1)
    assert len(mesh.faces) > 100
    assert np.abs(radii - 0.4).max() < 0.01
    assert mesh.is_watertight and mesh.volume > 0  # closed, normals outwards
    assert mesh.volume == pytest.approx(4 / 3 * np.pi * 0.4**3, rel=0.03)
    colors = mesh.visual.vertex_colors
    up, down = mesh.vertices[:, 2] > 0.02, mesh.vertices[:, 2] < -0.02
    assert (colors[up, :3] == [255, 0, 0]).all() and (colors[down, :3] == [0, 0, 255]).all()


def test_surface_cut_by_the_grid_is_closed():
    mesh = extract_mesh(Ball(0.5, center=(0.45, 0.0, 0.0)), resolution=24, bound=0.6)
    assert mesh.is_watertight
    assert mesh.vertices[:, 0].max() <= 0.6 + 1e-6


def test_glb_round_trip(tmp_path):
    mesh = extract_mesh(Ball(0.4), resolution=24, bound=0.6)
    path = save_glb(mesh, tmp_path / "sub" / "ball.glb")
    assert path.exists() and [p.name for p in path.parent.iterdir()] == ["ball.glb"]  # no temporary left
    loaded = load_glb(path)
    assert len(loaded.vertices) > 0 and len(loaded.faces) == len(mesh.faces)
    assert np.abs(np.linalg.norm(loaded.vertices, axis=1) - 0.4).max() < 0.02
    colors = np.asarray(loaded.visual.vertex_attributes["color"])
    assert colors.shape == (len(loaded.vertices), 4)
    # saved +y up: the world's top (red, z > 0) is now y > 0
    up = loaded.vertices[:, 1] > 0.02
    assert (colors[up, :3] == [255, 0, 0]).all()
    assert (colors[loaded.vertices[:, 1] < -0.02, :3] == [0, 0, 255]).all()


def test_glb_has_a_material_normals_and_linear_colours(tmp_path):
    import json
    import struct

    mesh = extract_mesh(Ball(0.4), resolution=24, bound=0.6)
    mesh.visual.vertex_colors = np.tile([128, 128, 128, 255], (len(mesh.vertices), 1)).astype(np.uint8)
    path = save_glb(mesh, tmp_path / "ball.glb")
    data = path.read_bytes()
    doc = json.loads(data[20:20 + struct.unpack("<I", data[12:16])[0]])
    prim = doc["meshes"][0]["primitives"][0]
    assert {"POSITION", "NORMAL", "COLOR_0"} <= set(prim["attributes"])
    pbr = doc["materials"][prim["material"]]["pbrMetallicRoughness"]
    assert pbr["metallicFactor"] == 0.0 and 0.3 <= pbr["roughnessFactor"] <= 1.0
    loaded = load_glb(path)
    assert loaded.visual.material.metallicFactor == 0.0
    # sRGB 128 is linear 0.2158: COLOR_0 holds 55, as glTF defines it
    assert (np.asarray(loaded.visual.vertex_attributes["color"])[:, :3] == 55).all()
    # normals point outwards (the file's own NORMAL, not recomputed)
    normals = loaded.vertex_normals
    assert (np.einsum("ij,ij->i", normals, loaded.vertices) > 0).mean() > 0.99


def test_auto_level_removes_floaters_and_tunnels():
    """A ball with a thin hollow shell patch, a tunnel of low density through it and a floater: at the fixed 0.5
    the raw field gives a mesh with several pieces and a handle; the chosen level and the cleaning give one closed,
    genus-0 piece."""

    class Holey(Scene3D):
        def query(self, points):
            r = points.norm(dim=-1)
            occ = (0.5 + (0.4 - r) * 4.0).clamp(0, 1) * 1.6
            tunnel = (points[:, :2].norm(dim=-1) < 0.05).float()  # along z, through the centre
            occ = occ * (1 - 0.8 * tunnel)
            floater = ((points - torch.tensor([0.75, 0.0, 0.0])).norm(dim=-1) < 0.08).float() * 1.6
            return occ + floater, RED.expand(len(points), 3)

    raw = extract_mesh(Holey(), resolution=48, threshold=0.5, smooth=0, clean=False)
    assert len(raw.split(only_watertight=False)) >= 2
    mesh = extract_mesh(Holey(), resolution=48)
    assert len(mesh.split(only_watertight=False)) == 1
    assert mesh.is_watertight and mesh.euler_number == 2  # a sphere: no tunnel left
    assert 0.5 < mesh.metadata["iso_level"] < 1.6


def test_decimation_to_a_face_budget():
    mesh = extract_mesh(Ball(0.4), resolution=40, bound=0.6, max_faces=500)
    assert 200 < len(mesh.faces) <= 500
    assert np.abs(np.linalg.norm(mesh.vertices, axis=1) - 0.4).max() < 0.03
    assert (mesh.visual.vertex_colors[mesh.vertices[:, 2] > 0.05, :3] == [255, 0, 0]).all()


def test_empty_scene_raises_a_clear_error():
    with pytest.raises(EmptyMeshError, match="below the iso-level"):
        extract_mesh(Ball(0.4, empty=True), resolution=16)
    assert issubclass(EmptyMeshError, UserError) and issubclass(EmptyMeshError, ValueError)


@pytest.mark.parametrize("threshold", [None, 3.0])
def test_field_mesh_iso_level(threshold):
    field = RadianceField(FieldConfig(resolution=16, channels=4, hidden_dim=16))
    with torch.no_grad():
        field.mlp[-1].weight.zero_()
        field.mlp[-1].bias.zero_()
    # only the blob is left: density softplus(10·(1 - r/0.5)); None means the field's own mesh_threshold
    mesh = extract_mesh(field, resolution=48, threshold=threshold)
    level = field.cfg.mesh_threshold if threshold is None else threshold
    expected = 0.5 * (1 - np.log(np.expm1(level)) / 10)  # r where softplus(10·(1 - r/0.5)) = level
    r = np.linalg.norm(mesh.vertices, axis=1)
    assert np.abs(r - expected).max() < 0.02
    assert np.allclose(mesh.visual.vertex_colors[:, :3], 128, atol=1)  # sigmoid(0) = 0.5


def test_gaussian_scene_exports_a_mesh():
    from lods.scenes.gaussians import GaussiansConfig, GaussianScene

    scene = GaussianScene(GaussiansConfig(num_points=300, init_opacity=0.5))
    mesh = extract_mesh(scene, resolution=24)  # occupancy-like query: a level chosen from the field
    assert len(mesh.faces) > 0
    assert np.abs(mesh.vertices).max() < 0.7  # the ball init has radius 0.5
