import math

import pytest
import torch

from lods.render.cameras import intrinsics, orbit_cameras
from lods.render.splat_torch import ALPHA_MIN, project_gaussians, quat_to_rotmat, rasterize_torch


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors: intra-op threads only add barrier waits (badly so on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_gaussians(n, seed=0, spread=1.0, scale=(0.02, 0.1)):
    g = torch.Generator().manual_seed(seed)
    means = (torch.rand(n, 3, generator=g) - 0.5) * spread
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * (scale[1] - scale[0]) + scale[0]
    opacities = torch.rand(n, generator=g) * 0.9 + 0.05
    colors = torch.rand(n, 3, generator=g)
    return means, quats, scales, opacities, colors


def cameras(width, height, n=2, fov=45.0):
    cams = orbit_cameras(torch.linspace(-10, 35, n), torch.linspace(0, 250, n), torch.linspace(1.8, 3.0, n), fov)
    return cams.viewmats, intrinsics(cams.fov_deg, width, height)


def brute_force(means2d, conics, depths, radii, opacities, colors, width, height, alpha_max=0.99):
    """Every pixel against every visible Gaussian, no tiles: the definition the tiled renderer must match."""
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    pix = torch.stack([xs, ys], -1).reshape(-1, 2)
    vis = (radii > 0).all(-1).nonzero().squeeze(1)
    vis = vis[torch.argsort(depths[vis])]
    d = pix[:, None] - means2d[None, vis]
    c = conics[vis]
    sigma = 0.5 * (c[:, 0] * d[..., 0] ** 2 + c[:, 2] * d[..., 1] ** 2) + c[:, 1] * d[..., 0] * d[..., 1]
    alpha = (opacities[vis] * torch.exp(-sigma)).clamp_max(alpha_max)
    alpha = torch.where(alpha >= ALPHA_MIN, alpha, torch.zeros_like(alpha))
    t = torch.cumprod(torch.cat([torch.ones_like(alpha[:, :1]), 1 - alpha], -1), -1)
    w = alpha * t[:, :-1]
    rgb = (w @ colors[vis]).T.reshape(-1, height, width)
    return rgb, (1 - t[:, -1]).reshape(1, height, width)


def test_projection_matches_gsplat_reference():
    from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci

    width, height = 64, 48
    means, quats, scales, _, _ = random_gaussians(300, seed=1, spread=6.0)  # some behind / beside the cameras
    viewmats, Ks = cameras(width, height, n=3)
    covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    radii_ref, m2d_ref, depth_ref, conics_ref, _ = _fully_fused_projection(means, covars, viewmats, Ks, width, height)
    m2d, conics, depths, radii = project_gaussians(means, quats, scales, viewmats, Ks, width, height)

    valid_ref = (radii_ref > 0).all(-1)
    valid = (radii > 0).all(-1)
    assert valid.sum() > 100 and (~valid).sum() > 50  # the test exercises both cases
    assert torch.equal(valid, valid_ref)
    torch.testing.assert_close(m2d[valid], m2d_ref[valid], rtol=1e-5, atol=1e-3)
    torch.testing.assert_close(conics[valid], conics_ref[valid], rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(depths, depth_ref, rtol=1e-5, atol=1e-5)
    assert (radii[valid] - radii_ref[valid]).abs().max() <= 1  # ceil() of equal floats, up to rounding


def test_opacity_tightens_radii_and_culls_transparent():
    width = height = 32
    means, quats, scales, _, _ = random_gaussians(50, seed=2)
    viewmats, Ks = cameras(width, height, n=1)
    r_full = project_gaussians(means, quats, scales, viewmats, Ks, width, height)[3]
    op = torch.full((50,), 0.05)
    op[0] = 1e-3  # below 1/255: never visible
    r_op = project_gaussians(means, quats, scales, viewmats, Ks, width, height, opacities=op)[3]
    assert (r_op <= r_full).all() and (r_op < r_full).any()
    assert (r_op[0, 0] == 0).all()


def test_tiled_render_matches_brute_force():
    width, height = 40, 24  # partial tiles on both axes
    means, quats, scales, opacities, colors = random_gaussians(300, seed=3)
    viewmats, Ks = cameras(width, height, n=2)
    out = rasterize_torch(means, quats, scales, opacities, colors, viewmats, Ks, width, height)
    assert out["rgb"].shape == (2, 3, height, width)
    assert out["alpha"].shape == out["depth"].shape == (2, 1, height, width)
    for c in range(2):
        rgb, alpha = brute_force(out["means2d"][c].detach(), out["conics"][c], out["depths"][c], out["radii"][c],
                                 opacities, colors, width, height)
        torch.testing.assert_close(out["rgb"][c], rgb, atol=2e-4, rtol=0)
        torch.testing.assert_close(out["alpha"][c], alpha, atol=2e-4, rtol=0)


def test_single_isotropic_gaussian_image():
    size, s, dist, fov, opacity = 32, 0.1, 2.0, 40.0, 0.8
    cams = orbit_cameras([0.0], [0.0], dist, fov)
    K = cams.intrinsics(size, size)
    means = torch.zeros(1, 3)
    quats = torch.tensor([[1.0, 0, 0, 0]])
    colour = torch.tensor([[0.2, 0.6, 1.0]])
    bg = torch.tensor([1.0, 0.0, 0.0])
    out = rasterize_torch(means, quats, torch.full((1, 3), s), torch.tensor([opacity]), colour,
                          cams.viewmats, K, size, size, background=bg)

    focal = K[0, 0, 0].item()
    var = (focal * s / dist) ** 2 + 0.3  # EWA variance in pixels, plus the low-pass dilation
    ys, xs = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")
    expected = opacity * torch.exp(-0.5 * ((xs - size / 2) ** 2 + (ys - size / 2) ** 2) / var)
    expected = torch.where(expected >= ALPHA_MIN, expected, torch.zeros_like(expected))
    torch.testing.assert_close(out["alpha"][0, 0], expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out["rgb"][0], colour[0, :, None, None] * expected + bg[:, None, None] * (1 - expected),
                               atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out["means2d"][0, 0], torch.tensor([size / 2, size / 2]), atol=1e-4, rtol=0)
    hit = expected > 0
    torch.testing.assert_close(out["depth"][0, 0][hit], torch.full((int(hit.sum()),), dist), atol=1e-4, rtol=0)
    assert (out["depth"][0, 0][~hit] == 0).all()
    # the peak sits on the four pixels around the projected centre; a wide opaque one saturates at 0.99
    peak = out["alpha"][0, 0].argmax()
    assert (peak // size).item() in (size // 2 - 1, size // 2) and (peak % size).item() in (size // 2 - 1, size // 2)
    full = rasterize_torch(means, quats, torch.full((1, 3), 0.5), torch.ones(1), colour, cams.viewmats, K, size, size)
    assert math.isclose(full["alpha"].max().item(), 0.99, rel_tol=1e-6)


def test_gradients_reach_every_parameter_and_means2d():
    size = 24
    params = [t.clone().requires_grad_(True) for t in random_gaussians(100, seed=4)]
    viewmats, Ks = cameras(size, size, n=2)
    out = rasterize_torch(*params, viewmats, Ks, size, size, background=torch.tensor([0.3, 0.3, 0.3]))
    target = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    loss = (out["rgb"] - target).square().mean() + 0.1 * out["depth"].mean() + out["alpha"].mean()
    loss.backward()
    for name, p in zip(("means", "quats", "scales", "opacities", "colors"), params):
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    g2d = out["means2d"].grad
    assert g2d is not None and g2d.shape == (2, 100, 2)
    visible = (out["radii"] > 0).all(-1)
    assert (g2d[~visible] == 0).all() and g2d[visible].abs().sum() > 0


def test_gradients_match_finite_differences():
    size = 16
    means, quats, scales, opacities, colors = random_gaussians(20, seed=5, scale=(0.05, 0.15))
    viewmats, Ks = cameras(size, size, n=1)
    weights = torch.rand(3, size, size, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def loss_of(m):
        out = rasterize_torch(m, quats.double(), scales.double(), opacities.double(), colors.double(),
                              viewmats.double(), Ks.double(), size, size)
        return (out["rgb"][0] * weights).sum()

    m = means.double().requires_grad_(True)
    loss_of(m).backward()
    eps = 1e-6
    for i, j in [(0, 0), (3, 1), (7, 2)]:
        dm = torch.zeros_like(m)
        dm[i, j] = eps
        fd = (loss_of(m.detach() + dm) - loss_of(m.detach() - dm)) / (2 * eps)
        assert math.isclose(m.grad[i, j].item(), fd.item(), rel_tol=1e-3, abs_tol=1e-6)


def test_near_gaussian_hides_far_one_regardless_of_input_order():
    size = 16
    cams = orbit_cameras([0.0], [0.0], 3.0, 40.0)  # on +x looking at the origin
    quats = torch.tensor([[1.0, 0, 0, 0]]).repeat(2, 1)
    scales = torch.full((2, 3), 0.3)
    colors = torch.tensor([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # blue, red
    for red_x, expected in [(0.5, 0), (-0.5, 2)]:  # red near, then red far
        means = torch.tensor([[-red_x, 0.0, 0.0], [red_x, 0.0, 0.0]])
        out = rasterize_torch(means, quats, scales, torch.ones(2), colors, cams.viewmats,
                              cams.intrinsics(size, size), size, size)
        centre = out["rgb"][0, :, size // 2, size // 2]
        assert centre[expected] > 0.95 and centre[2 - expected] < 0.05
        assert abs(out["depth"][0, 0, size // 2, size // 2].item() - 2.5) < 0.05  # mostly the near one's depth


def test_behind_camera_is_culled_without_nan_gradients():
    size = 16
    cams = orbit_cameras([0.0], [0.0], 2.0, 40.0)
    means = torch.tensor([[0.0, 0.0, 0.0], [3.0, 0.0, 0.0], [2.0, 0.0, 0.0]], requires_grad=True)  # visible, behind, at the eye
    quats = torch.tensor([[1.0, 0, 0, 0]]).repeat(3, 1)
    scales = torch.full((3, 3), 0.1, requires_grad=True)
    out = rasterize_torch(means, quats, scales, torch.ones(3), torch.ones(3, 3), cams.viewmats,
                          cams.intrinsics(size, size), size, size)
    assert out["radii"][0, :, 0].tolist()[1:] == [0, 0] and out["radii"][0, 0, 0] > 0
    out["rgb"].sum().backward()
    assert torch.isfinite(means.grad).all() and torch.isfinite(scales.grad).all()
    assert (means.grad[1:] == 0).all()


def test_batch_equals_single_renders_and_per_camera_colours():
    size = 20
    means, quats, scales, opacities, colors = random_gaussians(80, seed=6)
    viewmats, Ks = cameras(size, size, n=3)
    per_cam = torch.stack([colors, colors.flip(-1), 1 - colors])
    bgs = torch.eye(3)
    out = rasterize_torch(means, quats, scales, opacities, per_cam, viewmats, Ks, size, size, background=bgs)
    for c in range(3):
        one = rasterize_torch(means, quats, scales, opacities, per_cam[c], viewmats[c:c + 1], Ks[c:c + 1], size, size,
                              background=bgs[c])
        torch.testing.assert_close(out["rgb"][c], one["rgb"][0])
        torch.testing.assert_close(out["depth"][c], one["depth"][0])


def test_empty_view_is_background():
    size = 16
    cams = orbit_cameras([0.0], [180.0], 2.0, 40.0)
    means = torch.tensor([[-5.0, 0.0, 0.0]])  # behind this camera (at x = -2, looking at +x)
    out = rasterize_torch(means, torch.tensor([[1.0, 0, 0, 0]]), torch.full((1, 3), 0.1), torch.ones(1),
                          torch.ones(1, 3), cams.viewmats, cams.intrinsics(size, size), size, size,
                          background=torch.tensor([0.1, 0.2, 0.3]))
    assert (out["alpha"] == 0).all() and (out["depth"] == 0).all()
    torch.testing.assert_close(out["rgb"][0, :, 3, 5], torch.tensor([0.1, 0.2, 0.3]))


def test_quat_to_rotmat_is_a_rotation():
    rot = quat_to_rotmat(torch.randn(10, 4, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(rot @ rot.transpose(-1, -2), torch.eye(3).expand(10, 3, 3), atol=1e-5, rtol=0)
    assert torch.allclose(torch.linalg.det(rot), torch.ones(10), atol=1e-5)
    assert torch.allclose(quat_to_rotmat(torch.tensor([2.0, 0, 0, 0])), torch.eye(3))


@pytest.mark.parametrize("size", [8, 17])
def test_odd_sizes(size):
    means, quats, scales, opacities, colors = random_gaussians(30, seed=7)
    viewmats, Ks = cameras(size, size, n=1)
    out = rasterize_torch(means, quats, scales, opacities, colors, viewmats, Ks, size, size, tile_size=8)
    rgb, alpha = brute_force(out["means2d"][0].detach(), out["conics"][0], out["depths"][0], out["radii"][0],
                             opacities, colors, size, size)
    torch.testing.assert_close(out["rgb"][0], rgb, atol=2e-4, rtol=0)
