import dataclasses

import numpy as np
import pytest
import torch

from lods.config import from_dict
from lods.errors import UserError
from lods.render.cameras import orbit_cameras
from lods.scenes.base import Scene3D
from lods.scenes.gaussians import PARAMS, GaussiansConfig, GaussianScene, sh_to_rgb


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors: intra-op threads only add barrier waits (badly so on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small(**kw) -> GaussiansConfig:
    return dataclasses.replace(GaussiansConfig(num_points=200), **kw)


def adam(scene):
    return torch.optim.Adam(scene.param_groups())


def test_config_rejects_unknown_keys_and_init_is_deterministic():
    cfg = from_dict(GaussiansConfig, {"num_points": 150, "seed": 3})
    with pytest.raises(UserError):
        from_dict(GaussiansConfig, {"num_pts": 150})
    a, b, c = GaussianScene(cfg), GaussianScene(dataclasses.replace(cfg, seed=0), seed=3), GaussianScene(cfg, seed=4)
    assert isinstance(a, Scene3D) and a.num_gaussians == 150
    for name in PARAMS:
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.means, c.means)
    assert a.means.norm(dim=-1).max() <= cfg.init_radius + 1e-6
    torch.testing.assert_close(a.get_opacities(), torch.full((150,), cfg.init_opacity))
    assert (a.get_scales() > 0).all() and (a.get_scales() < 0.3).all()


def test_init_from_point_cloud():
    xyz = np.random.default_rng(0).uniform(-1, 1, (50, 3))
    rgb = np.tile([[255, 0, 0]], (50, 1))
    scene = GaussianScene(small(init="points"), points=(xyz, rgb))
    assert scene.num_gaussians == 50
    torch.testing.assert_close(scene.means.detach(), torch.as_tensor(xyz, dtype=torch.float32))
    torch.testing.assert_close(scene.get_colors(), torch.tensor([[1.0, 0.0, 0.0]]).expand(50, 3), atol=1e-6, rtol=0)
    with pytest.raises(UserError):
        GaussianScene(small(init="points"))


def test_render_outputs():
    scene = GaussianScene(small())
    cams = orbit_cameras([10.0, 20.0], [0.0, 90.0], 2.0, 45.0)
    out = scene.render(cams, 16, background=torch.ones(3))
    assert out["rgb"].shape == (2, 3, 16, 16) and out["alpha"].shape == (2, 1, 16, 16)
    assert out["rgb"].min() >= 0 and out["rgb"].max() <= 1 + 1e-6
    assert out["alpha"].max() > 0.5 and out["means2d"].shape == (2, 200, 2)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_colours_match_gsplat_reference(degree):
    from gsplat.cuda._torch_impl import _spherical_harmonics

    g = torch.Generator().manual_seed(degree)
    sh = torch.randn(40, (degree + 1) ** 2, 3, generator=g) * 0.3
    dirs = torch.nn.functional.normalize(torch.randn(40, 3, generator=g), dim=-1)
    ref = (_spherical_harmonics(degree, dirs, sh) + 0.5).clamp(0, 1)
    torch.testing.assert_close(sh_to_rgb(sh, dirs, degree), ref, atol=1e-5, rtol=1e-5)


def test_view_dependent_colour_renders_per_camera():
    scene = GaussianScene(small(sh_degree=1))
    with torch.no_grad():
        scene.f_rest[:, 1] = 1.0  # coefficient 2, the z-linear band: cameras above and below see different colours
    cams = orbit_cameras([60.0, -60.0], [0.0, 0.0], 2.0, 45.0)
    colors = scene.get_colors(cams.c2w[:, :3, 3])
    assert colors.shape == (2, 200, 3) and (colors[0] - colors[1]).abs().mean() > 0.1
    assert [g["name"] for g in scene.param_groups()][-1] == "f_rest"
    out = scene.render(cams, 16)
    out["rgb"].sum().backward()
    assert scene.f_rest.grad.abs().sum() > 0


def test_state_tensors_round_trip_with_other_count():
    a = GaussianScene(small(num_points=120, seed=1))
    b = GaussianScene(small(num_points=80, seed=2))
    a.grad_accum += 1.5
    b.load_state_tensors(a.state_tensors())
    assert b.num_gaussians == 120 and torch.equal(b.grad_accum, a.grad_accum)
    assert torch.equal(torch.rand(3, generator=a._gen), torch.rand(3, generator=b._gen))  # splits resume identically
    for name in PARAMS:
        assert torch.equal(getattr(b, name), getattr(a, name))
    adam(b).step()  # a fresh optimizer over the loaded parameters works


def fake_backward(scene, size=16):
    cams = orbit_cameras([15.0, 30.0], [0.0, 120.0], 2.0, 45.0)
    out = scene.render(cams, size)
    (out["rgb"] - 0.2).square().mean().backward()
    return out


def test_densify_clones_splits_prunes_and_keeps_optimizer_consistent():
    cfg = small(num_points=100, init_scale=0.02, grad_threshold=1e-3, percent_dense=0.03, max_gaussians=10_000)
    scene = GaussianScene(cfg)
    with torch.no_grad():
        scene.scales[50:] = torch.log(torch.tensor(0.05))  # 50..99 are "big": split instead of clone
        scene.opacities[:5] = -10.0  # prune candidates
    opt = adam(scene)
    fake_backward(scene)
    opt.step()
    old = {name: getattr(scene, name).detach().clone() for name in PARAMS}
    old_state = {name: opt.state[getattr(scene, name)]["exp_avg"].clone() for name in ("means", "f_dc")}
    scene.grad_count[:] = 1
    scene.grad_accum[:] = 0
    scene.grad_accum[10:20] = 1.0  # small + high gradient -> clone
    scene.grad_accum[60:70] = 1.0  # big + high gradient -> split
    scene.grad_accum[0:2] = 1.0  # transparent: cloned, then the originals and clones are pruned

    stats = scene.densify_and_prune(opt)
    assert stats == {"cloned": 12, "split": 10, "pruned": 2 * 2 + 3, "total": 100 + 12 + 10 - 7}
    n = scene.num_gaussians
    # untouched rows keep their values and Adam moments; new rows start with zero moments
    kept = torch.cat([torch.arange(5, 60), torch.arange(70, 100)])
    torch.testing.assert_close(scene.means[: len(kept)], old["means"][kept])
    torch.testing.assert_close(opt.state[scene.means]["exp_avg"][: len(kept)], old_state["means"][kept])
    assert (opt.state[scene.f_dc]["exp_avg"][len(kept):] == 0).all()
    torch.testing.assert_close(scene.means[len(kept):len(kept) + 10], old["means"][10:20])  # clones
    torch.testing.assert_close(scene.get_scales()[-20:], old["scales"][60:70].exp().repeat(2, 1) / 1.6)
    assert (scene.means[-20:] - old["means"][60:70].repeat(2, 1)).norm(dim=-1).max() < 0.5
    # the optimizer holds exactly the new parameters, with matching state
    held = [p for g in opt.param_groups for p in g["params"]]
    assert all(any(p is getattr(scene, name) for p in held) for name in ("means", "scales", "quats", "opacities", "f_dc"))
    for p in held:
        assert p.shape[0] == n and opt.state[p]["exp_avg"].shape == p.shape
    assert scene.grad_accum.shape == (n,) and (scene.grad_accum == 0).all()
    opt.zero_grad()
    fake_backward(scene)
    opt.step()  # works on the new shapes
    assert torch.isfinite(scene.means).all()


def test_densify_respects_the_budget():
    scene = GaussianScene(small(num_points=100, max_gaussians=105, prune_opacity=0.0))
    scene.grad_count[:] = 1
    scene.grad_accum[:] = torch.linspace(0, 1, 100)
    stats = scene.densify_and_prune(None)
    assert stats["total"] == 105 and stats["cloned"] + stats["split"] == 5


def test_after_step_schedule_and_opacity_reset():
    cfg = small(num_points=60, densify_from=2, densify_every=2, densify_until=5, grad_threshold=0.0,
                percent_dense=1.0, opacity_reset_every=4, lr_means=1e-2, lr_means_final=1e-4, lr_means_steps=10)
    scene = GaussianScene(cfg)
    opt = adam(scene)
    counts, max_opacity = [], []
    for step in range(7):
        opt.zero_grad()
        out = fake_backward(scene)
        opt.step()
        scene.after_step(step, out, opt)
        counts.append(scene.num_gaussians)
        max_opacity.append(scene.get_opacities().max().item())
    # densify at steps 2 and 4 (every visible Gaussian clones: threshold 0), none from 5 on
    assert counts[0] == counts[1] == 60 and counts[2] > 60 and counts[4] > counts[3] and counts[6] == counts[5]
    assert max_opacity[3] > 0.05 and max_opacity[4] <= 0.01 + 1e-6  # reset at step 4
    assert (opt.state[scene.opacities]["exp_avg"] != 0).any()  # and training goes on
    means_group = next(g for g in opt.param_groups if g["name"] == "means")
    assert means_group["lr"] == pytest.approx(1e-2 * (1e-4 / 1e-2) ** 0.6)


def test_regularizers():
    scene = GaussianScene(small(reg_opacity_entropy=True, reg_anisotropy=True, max_anisotropy=2.0))
    assert GaussianScene(small()).regularizers({}, 0) == {}
    with torch.no_grad():
        scene.scales[:, 0] += 2.0  # anisotropy e^2 > 2
    losses = scene.regularizers({}, 0)
    assert set(losses) == {"loss_opacity", "loss_anisotropy"}
    assert losses["loss_anisotropy"] > 0
    sum(losses.values()).backward()
    assert scene.opacities.grad.abs().sum() > 0 and scene.scales.grad.abs().sum() > 0


def test_query_density_and_colour():
    scene = GaussianScene(small(init="points", init_scale=0.1, init_opacity=0.5),
                          points=(np.array([[0.0, 0, 0], [1.0, 0, 0]]), np.array([[1.0, 0, 0], [0.0, 0, 1]])))
    pts = torch.tensor([[0.0, 0, 0], [0.1, 0, 0], [1.0, 0, 0], [0.5, 0.5, 0.5], [3.0, 0, 0]])
    density, colour = scene.query(pts, chunk=2, budget=1)  # tiny chunks exercise both loops
    torch.testing.assert_close(density[:3], torch.tensor([0.5, 0.5 * float(np.exp(-0.5)), 0.5]), atol=1e-5, rtol=1e-5)
    assert density[3] == 0 and density[4] == 0
    torch.testing.assert_close(colour[0], torch.tensor([1.0, 0, 0]), atol=1e-5, rtol=0)
    torch.testing.assert_close(colour[2], torch.tensor([0.0, 0, 1]), atol=1e-5, rtol=0)
    dense, _ = scene.query(pts)
    torch.testing.assert_close(dense, density)


def test_tiny_fit_reduces_loss():
    size = 16
    cfg = small(num_points=200, lr_means=5e-3, lr_means_final=None, lr_colors=5e-2, densify_until=0)
    scene = GaussianScene(cfg)
    cams = orbit_cameras([0.0], [0.0], 2.0, 45.0)
    target = torch.zeros(1, 3, size, size)
    target[:, 0, :, : size // 2] = 1.0  # red left half, blue right half, on black
    target[:, 2, :, size // 2:] = 1.0
    opt = adam(scene)
    losses = []
    for step in range(50):
        opt.zero_grad()
        out = scene.render(cams, size, background=torch.zeros(3))
        loss = (out["rgb"] - target).square().mean()
        loss.backward()
        opt.step()
        scene.after_step(step, out, opt)
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]  # about 0.26 -> 0.005 here


def test_checkpoint_resume_after_densification():
    from lods.utils.io import optimizer_from_tensors, optimizer_to_tensors

    cfg = small(num_points=80, densify_from=1, densify_every=1, grad_threshold=0.0, percent_dense=0.01)
    scene = GaussianScene(cfg)
    opt = torch.optim.Adam(scene.param_groups(), betas=(0.9, 0.99), eps=1e-15)
    for step in range(3):
        opt.zero_grad(set_to_none=True)
        out = fake_backward(scene)
        opt.step()
        scene.after_step(step, out, opt)
    assert scene.num_gaussians > 80
    tensors, meta = optimizer_to_tensors(opt)
    tensors = {k: v.clone() for k, v in tensors.items()}  # as if read from a file (they alias opt's state)

    resumed = GaussianScene(cfg)
    resumed.load_state_tensors(scene.state_tensors())
    opt2 = torch.optim.Adam(resumed.param_groups(), betas=(0.9, 0.99), eps=1e-15)
    optimizer_from_tensors(opt2, tensors, meta)
    for name in ("means", "opacities"):
        torch.testing.assert_close(opt2.state[getattr(resumed, name)]["exp_avg_sq"],
                                   opt.state[getattr(scene, name)]["exp_avg_sq"])
    for s, o in ((scene, opt), (resumed, opt2)):
        o.zero_grad(set_to_none=True)
        fake_backward(s)
        o.step()
    torch.testing.assert_close(resumed.means, scene.means)
