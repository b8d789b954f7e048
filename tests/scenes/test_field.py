import math

import pytest
import torch

from lods.config import from_dict
from lods.errors import UserError
from lods.render.cameras import orbit_cameras
from lods.render.volume import volume_render
from lods.scenes.field import FieldConfig, RadianceField



@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op thread while these tests run: on a busy 2-core machine two threads wait on each other
    (the tiny fit takes 16 s with 2, under 1 s with 1); restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


SMALL = dict(resolution=16, channels=4, hidden_dim=16, num_samples=24)


def _cams(n=1):
    return orbit_cameras(torch.full((n,), 15.0), torch.arange(n) * 90.0, 2.5, 40.0)


def _empty(field: RadianceField) -> RadianceField:
    """Make `field` empty: no blob, and a raw density far below zero everywhere."""
    with torch.no_grad():
        field.mlp[-1].weight.zero_()
        field.mlp[-1].bias[0] = -40.0
    field.cfg.density_blob = "none"
    field.update_occupancy()
    return field


def test_render_shapes_and_ranges():
    field = RadianceField(FieldConfig(**SMALL))
    out = field.render(_cams(2), 12)
    assert out["rgb"].shape == (2, 3, 12, 12)
    assert out["alpha"].shape == out["depth"].shape == (2, 1, 12, 12)
    assert 0 <= out["rgb"].min() and out["rgb"].max() <= 1
    assert 0 <= out["alpha"].min() and out["alpha"].max() <= 1 + 1e-5
    # the blob starts as a ball at the centre: opaque in the middle of the image, empty in the corners
    assert out["alpha"][:, 0, 6, 6].min() > 0.9 and out["alpha"][:, 0, 0, 0].max() < 0.05
    # z-depth of the ball's front: between the camera-to-centre distance minus the blob radius and the centre
    d = out["depth"][0, 0, 6, 6].item()
    assert 2.5 - 0.55 < d < 2.5
    assert out["depth"][0, 0, 0, 0].item() == 0.0


@pytest.mark.parametrize("occupancy", [32, 0])
def test_empty_field_renders_background_with_zero_alpha(occupancy):
    field = _empty(RadianceField(FieldConfig(**SMALL, occupancy_resolution=occupancy)))
    out = field.render(_cams(2), 8)
    assert out["alpha"].abs().max() < 1e-6
    assert torch.allclose(out["rgb"], torch.ones_like(out["rgb"]), atol=1e-5)  # white by default
    bg = torch.tensor([0.2, 0.4, 0.6])
    out = field.render(_cams(2), 8, background=bg)
    assert torch.allclose(out["rgb"], bg.view(1, 3, 1, 1).expand(2, 3, 8, 8), atol=1e-5)
    img = torch.rand(2, 3, 8, 8)
    assert torch.allclose(field.render(_cams(2), 8, background=img)["rgb"], img, atol=1e-5)


@pytest.mark.parametrize("encoding", ["triplane", "grid", "hashgrid"])
def test_gradients_reach_every_parameter(encoding):
    cfg = FieldConfig(**SMALL, encoding=encoding, background="learned", hash_levels=4, hash_log2_size=10)
    field = RadianceField(cfg)
    out = field.render(_cams(1), 8)
    loss = (out["rgb"] - torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)).square().mean()
    regs = field.regularizers(out, 0)
    (loss + 0.1 * regs["loss_opacity"] + 0.1 * regs["loss_sparsity"]).backward()
    for group in field.param_groups():
        grads = [p.grad for p in group["params"]]
        assert all(g is not None for g in grads), group["name"]
        assert sum(g.abs().sum() for g in grads) > 0, group["name"]


def test_param_groups_cover_parameters_once_with_config_lrs():
    field = RadianceField(FieldConfig(**SMALL, background="learned", lr_encoding=0.02, lr_mlp=0.003))
    groups = {g["name"]: g for g in field.param_groups()}
    assert groups["encoding"]["lr"] == 0.02 and groups["mlp"]["lr"] == 0.003
    assert groups["background"]["lr"] == field.cfg.lr_background
    ids = [id(p) for g in groups.values() for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(field.parameters()))


def test_tiny_fit_reduces_loss():
    torch.manual_seed(0)
    cams = _cams(2)
    # target: a red ball of radius 0.35 (shifted off centre) on white, rendered by the same volume renderer
    centre = torch.tensor([0.1, 0.0, 0.05])

    def teacher(p):
        inside = ((p - centre).norm(dim=-1) < 0.35).float()
        return 30.0 * inside, torch.tensor([0.9, 0.15, 0.1]).expand(p.shape[0], 3)

    from lods.render.cameras import camera_rays

    o, d = camera_rays(cams, 16, 16)
    ref = volume_render(teacher, o.reshape(-1, 3), d.reshape(-1, 3), torch.ones(1, 3), n_samples=64, jitter=False)
    target = ref["rgb"].view(2, 16, 16, 3).permute(0, 3, 1, 2)

    field = RadianceField(FieldConfig(num_samples=24))  # default encoding and MLP sizes and lrs
    opt = torch.optim.Adam(field.param_groups())
    losses = []
    for step in range(50):
        out = field.render(cams, 16)
        loss = (out["rgb"] - target).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        field.after_step(step, out, opt)
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.3 * sum(losses[:5]) / 5


def test_state_round_trip_restores_renders():
    cfg = FieldConfig(**SMALL, background="learned")
    a = RadianceField(cfg)
    with torch.no_grad():
        for p in a.parameters():
            p.add_(0.05 * torch.randn_like(p))
    a.update_occupancy()
    b = RadianceField(cfg)
    b.load_state_tensors({k: v.clone() for k, v in a.state_tensors().items()})
    a.eval(), b.eval()
    with torch.no_grad():
        ra, rb = a.render(_cams(1), 10), b.render(_cams(1), 10)
    for k in ("rgb", "alpha", "depth"):
        assert torch.equal(ra[k], rb[k])
    with pytest.raises(ValueError):
        RadianceField(FieldConfig(**{**SMALL, "channels": 8})).load_state_tensors(a.state_tensors())


def test_query_zero_outside_bound_and_shapes():
    field = RadianceField(FieldConfig(**SMALL))
    pts = torch.tensor([[0.0, 0.0, 0.0], [0.9, 0.9, 0.9], [0.0, 0.0, 0.45]])
    dens, rgb = field.query(pts)
    assert dens.shape == (3,) and rgb.shape == (3, 3)
    assert dens[0] > 1.0 and dens[1] == 0.0  # blob centre vs outside the unit sphere
    assert ((rgb >= 0) & (rgb <= 1)).all()


def test_regularizers():
    field = RadianceField(FieldConfig(**SMALL))
    regs = field.regularizers({"alpha": torch.tensor([0.0, 1.0, 0.5, 0.5])}, 0)
    assert regs["loss_sparsity"].item() == pytest.approx(0.5)
    assert regs["loss_opacity"].item() == pytest.approx(math.log(2) / 2, rel=1e-3)


def test_occupancy_skips_empty_space_and_updates_after_steps():
    field = RadianceField(FieldConfig(**SMALL, occupancy_every=4))
    field.update_occupancy()
    occ = field.occupancy
    inside = occ.occupied(torch.tensor([[0.0, 0.0, 0.0], [0.95, 0.0, 0.0]]))
    assert inside.tolist() == [True, False]
    before = occ.density.clone()
    field.after_step(3, {}, None)
    assert torch.equal(before, occ.density)
    field.after_step(4, {}, None)
    assert not torch.equal(before, occ.density)


def test_config_validation_and_from_dict():
    cfg = from_dict(FieldConfig, {"encoding": "grid", "num_samples": 32})
    assert cfg.encoding == "grid" and cfg.num_samples == 32
    with pytest.raises(UserError):
        FieldConfig(encoding="mlp")
    with pytest.raises(UserError):
        from_dict(FieldConfig, {"samples": 3})


def test_seed_fixes_the_initial_parameters_only():
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b = RadianceField(FieldConfig(**SMALL), seed=7), RadianceField(FieldConfig(**SMALL, seed=7))
    assert torch.rand(1) == before  # the global RNG is untouched
    assert a.cfg.seed == 7
    for (k, va), vb in zip(a.state_tensors().items(), b.state_tensors().values()):
        assert torch.equal(va, vb), k
    c = RadianceField(FieldConfig(**SMALL), seed=8)
    assert not torch.equal(a.encoding.planes, c.encoding.planes)
