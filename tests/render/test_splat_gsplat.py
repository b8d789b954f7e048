"""The gsplat backend and the dispatcher. gsplat's CUDA kernels cannot run on CPU, so the glue is checked
against a stand-in `gsplat.rasterization` that speaks gsplat's output format; the real comparison runs
only where CUDA is available."""

import pytest
import torch

from lods.errors import UserError
from lods.render import gaussians as dispatch
from lods.render import splat_gsplat
from lods.render.cameras import intrinsics, orbit_cameras
from lods.render.splat_torch import rasterize_torch


@pytest.fixture(autouse=True)
def one_thread():
    """Small tensors: intra-op threads only add barrier waits (badly so on a busy 2-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def scene(n=60, size=20, n_cams=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    gs = ((torch.rand(n, 3, generator=g) - 0.5), torch.randn(n, 4, generator=g), torch.rand(n, 3, generator=g) * 0.1 + 0.02,
          torch.rand(n, generator=g), torch.rand(n, 3, generator=g))
    cams = orbit_cameras(torch.linspace(0, 30, n_cams), torch.linspace(0, 90, n_cams), 2.5, 40.0)
    return gs, cams.viewmats, intrinsics(cams.fov_deg, size, size), size


def fake_rasterization(old_radii=False):
    """gsplat.rasterization's contract (packed=False, RGB+ED), computed by our renderer with gsplat's 0.999 clamp."""

    def rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height, *, near_plane, far_plane,
                      eps2d, tile_size, backgrounds, render_mode, packed, absgrad):
        assert render_mode == "RGB+ED" and packed is False and absgrad is False
        out = rasterize_torch(means, quats, scales, opacities, colors, viewmats, Ks, width, height, backgrounds,
                              near_plane=near_plane, far_plane=far_plane, eps2d=eps2d, tile_size=tile_size,
                              alpha_max=0.999)
        render = torch.cat([out["rgb"], out["depth"]], 1).permute(0, 2, 3, 1)
        radii = out["radii"].amax(-1) if old_radii else out["radii"]
        meta = {"means2d": out["means2d"], "radii": radii, "depths": out["depths"], "conics": out["conics"]}
        return render, out["alpha"].permute(0, 2, 3, 1), meta

    return rasterization


@pytest.mark.parametrize("old_radii", [False, True])
def test_gsplat_glue_returns_the_torch_layout(monkeypatch, old_radii):
    gsplat = pytest.importorskip("gsplat")
    monkeypatch.setattr(gsplat, "rasterization", fake_rasterization(old_radii))
    gs, viewmats, Ks, size = scene()
    gs = [t.clone().requires_grad_(True) for t in gs]
    bg = torch.tensor([0.2, 0.4, 0.6])
    out = splat_gsplat.rasterize_gsplat(*gs, viewmats, Ks, size, size, bg)
    ref = rasterize_torch(*gs, viewmats, Ks, size, size, bg, alpha_max=0.999)
    for key in ("rgb", "alpha", "depth"):
        assert out[key].shape == ref[key].shape
        torch.testing.assert_close(out[key], ref[key])
    assert out["radii"].shape == (2, gs[0].shape[0], 2)
    out["rgb"].sum().backward()
    assert out["means2d"].grad is not None and out["means2d"].grad.shape == (2, gs[0].shape[0], 2)


def test_dispatch_picks_torch_on_cpu_and_gsplat_on_request(monkeypatch):
    calls = []

    def fake_gsplat(*args, **kwargs):
        calls.append(kwargs)
        return {"rgb": None}

    monkeypatch.setattr(splat_gsplat, "rasterize_gsplat", fake_gsplat)
    gs, viewmats, Ks, size = scene(n_cams=1)
    out = dispatch.rasterize_gaussians(*gs, viewmats, Ks, size, size, backend="auto")
    assert out["rgb"].shape == (1, 3, size, size) and not calls
    ref = rasterize_torch(*gs, viewmats, Ks, size, size)
    torch.testing.assert_close(out["rgb"], ref["rgb"])
    dispatch.rasterize_gaussians(*gs, viewmats, Ks, size, size, backend="gsplat", near_plane=0.1)
    assert calls == [{"near_plane": 0.1}]
    with pytest.raises(UserError):
        dispatch.rasterize_gaussians(*gs, viewmats, Ks, size, size, backend="vulkan")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA for gsplat's kernels")
def test_gsplat_matches_torch_on_cuda():
    gs, viewmats, Ks, size = scene(n=300, size=32)
    dev = torch.device("cuda")
    gs = [t.to(dev).requires_grad_(True) for t in gs]
    viewmats, Ks = viewmats.to(dev), Ks.to(dev)
    out = dispatch.rasterize_gaussians(*gs, viewmats, Ks, size, size, torch.ones(3, device=dev))
    ref = rasterize_torch(*gs, viewmats, Ks, size, size, torch.ones(3, device=dev), alpha_max=0.999)
    torch.testing.assert_close(out["rgb"], ref["rgb"], atol=2e-3, rtol=0)
    torch.testing.assert_close(out["alpha"], ref["alpha"], atol=2e-3, rtol=0)
    out["rgb"].sum().backward()
    assert out["means2d"].grad is not None
