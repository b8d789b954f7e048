import math

import pytest
import torch

from lods.render.volume import (
    composite,
    compositing_weights,
    expand_background,
    packed_weights,
    ray_sphere_interval,
    stratified_samples,
    volume_render,
)


def _ray_along_x(n=1):
    origins = torch.tensor([[-2.0, 0.0, 0.0]]).expand(n, 3)
    dirs = torch.tensor([[1.0, 0.0, 0.0]]).expand(n, 3)
    return origins, dirs


def test_sphere_interval_and_misses():
    origins = torch.tensor([[-2.0, 0.0, 0.0], [-2.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    dirs = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    near, far = ray_sphere_interval(origins, dirs, radius=1.0, near_min=0.05)
    assert torch.allclose(near, torch.tensor([1.0, 0.05, 0.05]))
    assert torch.allclose(far, torch.tensor([3.0, 0.05, 1.0]))  # the miss has zero length


def test_stratified_deltas_sum_to_segment():
    near, far = torch.tensor([0.5, 1.0]), torch.tensor([2.5, 1.5])
    t, deltas = stratified_samples(near, far, 16, jitter=True)
    assert torch.allclose(deltas.sum(-1), far - near)
    assert (t >= near[:, None]).all() and (t <= far[:, None]).all()
    assert (t.diff(dim=-1) > 0).all()


@pytest.mark.parametrize("jitter", [False, True])
def test_constant_density_matches_beer_lambert(jitter):
    sigma0, color = 1.7, torch.tensor([0.9, 0.1, 0.3])
    # rays through the unit sphere at several offsets: chord lengths 2·sqrt(1 - h²)
    h = torch.tensor([0.0, 0.3, 0.6, 0.9])
    origins = torch.stack([torch.full_like(h, -3.0), h, torch.zeros_like(h)], -1)
    dirs = torch.tensor([[1.0, 0.0, 0.0]]).expand(4, 3)
    field = lambda p: (torch.full((p.shape[0],), sigma0), color.expand(p.shape[0], 3))  # noqa: E731
    bg = torch.tensor([1.0, 1.0, 1.0]).expand(4, 3)
    out = volume_render(field, origins, dirs, bg, n_samples=32, radius=1.0, jitter=jitter)
    alpha = 1 - torch.exp(-sigma0 * 2 * (1 - h**2).sqrt())
    assert torch.allclose(out["alpha"], alpha, atol=1e-5)
    assert torch.allclose(out["rgb"], alpha[:, None] * color + (1 - alpha[:, None]) * bg, atol=1e-5)


@pytest.mark.parametrize("jitter", [False, True])
def test_slab_transmittance_and_depth(jitter):
    # ray from x=-2 along +x; sphere spans t in [1, 3]; slab |x| < 0.25 is t in [1.75, 2.25], bin-aligned at 256 samples
    sigma0 = 3.0
    red = torch.tensor([1.0, 0.0, 0.0])

    def field(p):
        inside = (p[:, 0].abs() < 0.25).float()
        return sigma0 * inside, red.expand(p.shape[0], 3)

    origins, dirs = _ray_along_x()
    out = volume_render(field, origins, dirs, torch.ones(1, 3), n_samples=256, jitter=jitter)
    L = 0.5
    alpha = 1 - math.exp(-sigma0 * L)
    assert out["alpha"].item() == pytest.approx(alpha, abs=1e-5)
    assert torch.allclose(out["rgb"][0], torch.tensor([1.0, 1 - alpha, 1 - alpha]), atol=1e-5)
    # expected distance of the absorbed light in a uniform slab starting at t0
    t0 = 1.75
    expected = t0 + 1 / sigma0 - L * math.exp(-sigma0 * L) / (1 - math.exp(-sigma0 * L))
    assert out["depth"].item() == pytest.approx(expected, abs=2e-3)


def test_depth_is_measured_along_the_camera_axis():
    origins, dirs = _ray_along_x()
    field = lambda p: (torch.full((p.shape[0],), 1e3), torch.zeros(p.shape[0], 3))  # noqa: E731
    out = volume_render(field, origins, dirs, torch.ones(1, 3), n_samples=512, z_scale=torch.tensor([0.5]))
    assert out["alpha"].item() == pytest.approx(1.0)
    assert out["depth"].item() == pytest.approx(0.5 * 1.0, abs=1e-2)  # surface at t = 1, times cos


def test_empty_space_renders_background():
    origins, dirs = _ray_along_x(3)
    bg = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6], [0.7, 0.8, 0.9]])
    field = lambda p: (torch.zeros(p.shape[0]), torch.rand(p.shape[0], 3))  # noqa: E731
    for skip in (None, lambda p: torch.zeros(p.shape[0], dtype=torch.bool)):
        out = volume_render(field, origins, dirs, bg, n_samples=8, skip_fn=skip)
        assert torch.equal(out["alpha"], torch.zeros(3))
        assert torch.allclose(out["rgb"], bg)
        assert torch.equal(out["depth"], torch.zeros(3))


def test_packed_weights_match_dense():
    torch.manual_seed(0)
    R, S = 5, 12
    sigma = torch.rand(R, S) * 4
    keep = torch.rand(R, S) > 0.4
    keep[2] = False  # a ray with no samples at all
    sigma = sigma * keep
    deltas = torch.rand(R, S) * 0.3
    dense = compositing_weights(sigma, deltas)
    idx = keep.reshape(-1).nonzero().squeeze(1)
    packed = packed_weights(sigma.reshape(-1)[idx], deltas.reshape(-1)[idx], idx // S)
    assert torch.allclose(packed, dense.reshape(-1)[idx], atol=1e-6)
    assert torch.allclose(dense.sum(-1), 1 - torch.exp(-(sigma * deltas).sum(-1)), atol=1e-6)


def test_skipped_samples_are_not_evaluated():
    origins, dirs = _ray_along_x(2)
    seen = []

    def field(p):
        seen.append(p.shape[0])
        return torch.ones(p.shape[0]), torch.zeros(p.shape[0], 3)

    out = volume_render(field, origins, dirs, torch.ones(2, 3), n_samples=16, skip_fn=lambda p: p[:, 0] > 0)
    assert seen == [16]  # half of each ray's samples lie at x > 0
    assert out["alpha"][0].item() == pytest.approx(1 - math.exp(-1.0), abs=1e-5)


def test_gradients_flow_to_density_and_colour():
    origins, dirs = _ray_along_x()
    s = torch.tensor(2.0, requires_grad=True)
    c = torch.tensor([0.5, 0.5, 0.5], requires_grad=True)
    field = lambda p: (s.expand(p.shape[0]), c.expand(p.shape[0], 3))  # noqa: E731
    out = volume_render(field, origins, dirs, torch.zeros(1, 3), n_samples=8)
    out["rgb"].sum().backward()
    assert s.grad is not None and s.grad.abs() > 0 and c.grad.abs().sum() > 0


def test_expand_background_layouts():
    B, H, W = 2, 4, 5
    assert expand_background(torch.tensor([0.1, 0.2, 0.3]), B, H, W).shape == (B, H, W, 3)
    per_cam = torch.rand(B, 3)
    assert torch.equal(expand_background(per_cam, B, H, W)[:, 1, 2], per_cam)
    img = torch.rand(B, 3, H, W)
    assert torch.equal(expand_background(img, B, H, W), img.permute(0, 2, 3, 1))
    rays = torch.rand(B, H, W, 3)
    assert torch.equal(expand_background(rays, B, H, W), rays)
    with pytest.raises(ValueError):
        expand_background(torch.rand(B, 2), B, H, W)


def test_composite_dense_helper():
    w = torch.tensor([[0.25, 0.25]])
    rgb = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0]]])
    t = torch.tensor([[1.0, 3.0]])
    out = composite(w, rgb, t, torch.zeros(1, 3))
    assert torch.allclose(out["rgb"], torch.tensor([[0.25, 0.25, 0.0]]))
    assert out["alpha"].item() == pytest.approx(0.5) and out["depth"].item() == pytest.approx(2.0)
