"""Up axis: a cone standing in the +z-up world stands (apex up, +y) in model.ply and in mesh.glb alike."""

import numpy as np
import trimesh
from plyfile import PlyData

from lods.export.mesh import extract_mesh, save_glb
from lods.scenes.ply import load_ply, save_ply


def narrow_at_top(points: np.ndarray, up: int) -> bool:
    """Across the up axis, the points in the top quarter of the height range spread less than half as far as those
    in the bottom quarter."""
    h = points[:, up]
    lo, hi = h.min() + 0.25 * np.ptp(h), h.max() - 0.25 * np.ptp(h)
    across = np.delete(points, up, axis=1)
    spread = lambda sel: np.linalg.norm(across[sel] - across[sel].mean(0), axis=1).mean()  # noqa: E731
    return spread(h >= hi) < 0.5 * spread(h <= lo)


def test_the_cone_points_up_in_the_ply_and_the_glb(tmp_path, red_cone):
    world = red_cone.means.detach().numpy()
    assert narrow_at_top(world, up=2)  # the scene itself: apex at +z

    ply = save_ply(red_cone, tmp_path / "model.ply")
    v = PlyData.read(str(ply))["vertex"]
    file_points = np.stack([v["x"], v["y"], v["z"]], -1)
    assert narrow_at_top(file_points, up=1) and not narrow_at_top(file_points, up=2)
    assert file_points[:, 1].max() > 0.3 and file_points[:, 1].min() < -0.35  # apex near +0.5, base at -0.4

    glb = save_glb(extract_mesh(red_cone, resolution=40), tmp_path / "mesh.glb")
    mesh = trimesh.load(glb, force="mesh")
    assert narrow_at_top(np.asarray(mesh.vertices), up=1)
    # the glb and the ply share one frame: the mesh's top is where the splat's top is
    assert abs(mesh.vertices[:, 1].max() - file_points[:, 1].max()) < 0.1

    back = load_ply(ply)["means"].numpy()
    np.testing.assert_array_equal(back, world)
