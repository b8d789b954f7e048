"""model.ply: the 3DGS layout, +y up (the glb's frame), read back into the same parameters."""

import dataclasses

import numpy as np
import pytest
import torch
from plyfile import PlyData

from lods.errors import UserError
from lods.scenes.ply import load_gaussians, load_ply, save_ply, write_ply
from lods.render.cameras import Cameras, orbit_cameras
from lods.scenes.gaussians import PARAMS, GaussiansConfig, GaussianScene, sh_basis, sh_to_rgb

EXACT = ("means", "scales", "opacities", "f_dc")


def random_scene(degree: int, n: int = 150) -> GaussianScene:
    scene = GaussianScene(GaussiansConfig(num_points=n, sh_degree=degree))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name in PARAMS:
            p = getattr(scene, name)
            p.add_(0.3 * torch.randn(p.shape, generator=g))
    return scene


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_round_trip_gives_the_same_parameters(tmp_path, degree):
    scene = random_scene(degree)
    path = save_ply(scene, tmp_path / "out" / "model.ply")
    assert [p.name for p in path.parent.iterdir()] == ["model.ply"]  # no temporary left
    names = [p.name for p in PlyData.read(str(path))["vertex"].properties]
    assert names == (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"]
                     + [f"f_rest_{i}" for i in range(45)]  # padded to degree 3, the reference layout
                     + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])
    back = load_gaussians(path)
    assert back.cfg.sh_degree == degree
    for name in EXACT:
        assert torch.equal(getattr(back, name), getattr(scene, name)), name
    assert torch.allclose(back.quats, scene.quats, atol=1e-6, rtol=0)
    assert torch.allclose(back.f_rest, scene.f_rest, atol=1e-6, rtol=0)
    if degree <= 1:  # band 1 turns by a signed permutation: bit for bit
        assert torch.equal(back.f_rest, scene.f_rest)


def test_file_is_y_up_and_a_rigid_turn_of_the_scene(tmp_path):
    """The raw file, read as a scene in its own frame and seen by cameras turned the same way, renders the same
    images: positions, rotations and view-dependent colour (SH degree 3) all turned consistently."""
    scene = random_scene(3, n=60)
    with torch.no_grad():
        scene.scales.sub_(1.5)
    path = save_ply(scene, tmp_path / "model.ply")
    v = PlyData.read(str(path))["vertex"]
    np.testing.assert_array_equal(v["y"], scene.means[:, 2].detach().numpy())  # world up is the file's +y
    np.testing.assert_array_equal(v["z"], -scene.means[:, 1].detach().numpy())

    raw = {k: torch.from_numpy(np.stack([np.asarray(v[c], np.float32) for c in cs], -1)) for k, cs in {
        "means": "xyz", "scales": ["scale_0", "scale_1", "scale_2"], "quats": [f"rot_{i}" for i in range(4)],
        "f_dc": ["f_dc_0", "f_dc_1", "f_dc_2"]}.items()}
    raw["opacities"] = torch.from_numpy(np.asarray(v["opacity"], np.float32))
    rest = np.stack([np.asarray(v[f"f_rest_{i}"], np.float32) for i in range(45)], -1)
    raw["f_rest"] = torch.from_numpy(rest.reshape(-1, 3, 15).transpose(0, 2, 1).copy())
    in_file_frame = GaussianScene.from_tensors(raw, dataclasses.replace(scene.cfg))

    cams = orbit_cameras(torch.tensor([20.0, -35.0, 70.0]), torch.tensor([10.0, 130.0, 250.0]), 2.5, 40.0)
    turn = torch.eye(4)
    turn[:3, :3] = torch.tensor([[1.0, 0, 0], [0, 0, 1], [0, -1, 0]])
    turned = Cameras(turn @ cams.c2w, cams.fov_deg, cams.elevation_deg, cams.azimuth_deg, cams.distance)
    with torch.no_grad():
        a = scene.render(cams, 32)["rgb"]
        b = in_file_frame.render(turned, 32)["rgb"]
    assert a.std() > 0.01  # something is in view
    assert torch.allclose(a, b, atol=1e-4)


def test_sh_basis_matches_sh_to_rgb():
    g = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(50, 3, generator=g), dim=-1)
    sh = 0.05 * torch.randn(50, 16, 3, generator=g)
    expected = sh_to_rgb(sh, dirs, 3)
    assert torch.allclose(0.5 + torch.einsum("nk,nkc->nc", sh_basis(dirs, 3), sh), expected, atol=1e-6)


def test_writing_fewer_bands_and_reading_other_files(tmp_path):
    scene = random_scene(1)
    path = write_ply({k: getattr(scene, k) for k in PARAMS}, tmp_path / "a.ply", pad_sh_degree=0)
    assert sum(p.name.startswith("f_rest_") for p in PlyData.read(str(path))["vertex"].properties) == 9
    assert load_ply(path)["f_rest"].shape == (150, 3, 3)

    (tmp_path / "junk.ply").write_bytes(b"not a ply")
    with pytest.raises(UserError, match="not a readable ply"):
        load_ply(tmp_path / "junk.ply")
    from plyfile import PlyData as P, PlyElement

    pts = np.zeros(3, dtype=[("x", "f4"), ("y", "f4"), ("z", "f4")])
    P([PlyElement.describe(pts, "vertex")]).write(str(tmp_path / "points.ply"))
    with pytest.raises(UserError, match="missing f_dc_0"):
        load_ply(tmp_path / "points.ply")


def test_init_ply_reads_a_written_splat_back_into_the_world_frame(tmp_path):
    from lods.scenes.init_ply import scene_from_ply

    scene = random_scene(0)
    path = save_ply(scene, tmp_path / "model.ply")
    init = scene_from_ply(path, GaussiansConfig(), scale=1.0)
    for name in EXACT:
        assert torch.equal(getattr(init, name), getattr(scene, name)), name
    assert torch.allclose(init.quats, scene.quats, atol=1e-6, rtol=0)
