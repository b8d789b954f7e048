import numpy as np
import pytest
import torch
import trimesh

from lods.errors import UserError
from lods.export.mesh import EmptyMeshError, extract_mesh, save_glb
from lods.scenes.base import Scene3D
from lods.scenes.field import FieldConfig, RadianceField

RED, BLUE = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])


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
    loaded = trimesh.load(path, force="mesh")
    assert len(loaded.vertices) > 0 and len(loaded.faces) == len(mesh.faces)
    assert np.abs(np.linalg.norm(loaded.vertices, axis=1) - 0.4).max() < 0.02
    colors = np.asarray(loaded.visual.vertex_colors)
    assert colors.shape == (len(loaded.vertices), 4)
    # saved +y up: the world's top (red, z > 0) is now y > 0
    up = loaded.vertices[:, 1] > 0.02
    assert (colors[up, :3] == [255, 0, 0]).all()
    assert (colors[loaded.vertices[:, 1] < -0.02, :3] == [0, 0, 255]).all()


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
    from lods.scenes.gaussians import GaussianConfig, GaussianScene

    scene = GaussianScene(GaussianConfig(num_points=300, init_opacity=0.5))
    mesh = extract_mesh(scene, resolution=24)  # occupancy-like query: the default level 0.5
    assert len(mesh.faces) > 0
    assert np.abs(mesh.vertices).max() < 0.7  # the ball init has radius 0.5
