"""The paper path: per-method settings per preset, the reference LoRA init, VSD's prompt and camera dropout,
the shared draw, the batched LoRA branches and the fp16 loss scaling."""

import math

import pytest
import torch
import torch.nn.functional as F

from lods.errors import UserError
from lods.guidance import GuidanceConfig, apply_switches, build_guidance, split_method
from lods.guidance.lods import lods_grad
from lods.pipelines.presets import preset_config
from lods.priors import lora
from lods.priors.tiny_sd import build_tiny_sd
from lods.render.cameras import CameraSamplerConfig, sample_cameras

PROMPT = "a red cube"


# ------------------------------------------------------------------ presets
PAPER_SCALES = {"sds": 100.0, "lods-embedding": 1000.0, "lods-lora": 1000.0, "vsd": 7.5, "csd": None,
                "ism": 7.5, "sdi": 8.5, "nfsd": 7.5, "asd": 7.5}
FAST_SCALES = {"sds": 20.0, "lods-embedding": 100.0, "lods-lora": 100.0, "vsd": 7.5, "csd": None,
               "ism": 7.5, "sdi": 8.5, "nfsd": 7.5, "asd": 7.5}


@pytest.mark.parametrize("backbone", ["gs", "nerf"])
@pytest.mark.parametrize("method", list(PAPER_SCALES))
def test_each_method_keeps_its_reference_scale(method, backbone):
    assert preset_config("paper", backbone, method).guidance_config.guidance_scale == PAPER_SCALES[method]
    assert preset_config("fast", backbone, method).guidance_config.guidance_scale == FAST_SCALES[method]


def test_learning_rates_per_preset():
    assert preset_config("paper", "gs", "lods-lora").guidance_config.lora_lr == 5e-7
    assert preset_config("paper", "nerf", "lods-lora").guidance_config.lora_lr == 5e-7
    assert preset_config("paper", "gs", "lods-embedding").guidance_config.embedding_lr == 1e-4
    assert preset_config("paper", "nerf", "lods-embedding").guidance_config.embedding_lr == 1e-5
    assert preset_config("fast", "gs", "lods-embedding").guidance_config.embedding_lr == 3e-2
    assert preset_config("fast", "nerf", "lods-lora").guidance_config.lora_lr == 1e-3
    assert preset_config("paper", "gs", "vsd").guidance_config.vsd_lr == 1e-4


def test_paper_gs_preset_is_the_reference_config():
    cfg = preset_config("paper", "gs", "lods-embedding")
    g = cfg.gaussians
    assert (cfg.steps, cfg.render_size, cfg.cameras.views_per_step, cfg.background) == (2500, 512, 8, "black")
    assert tuple(cfg.cameras.distance_range) == (2.5, 4.0)
    assert (g["lr_means"], g["lr_means_final"], g["lr_opacities"], g["lr_colors"]) == (1.75e-4, 8.75e-5, 1e-2, 1.25e-2)
    assert (g["densify_from"], g["prune_screen_size"]) == (300, 20.0)
    assert list(cfg.adam_betas) == [0.9, 0.999]
    assert cfg.lambdas["sparsity"] == 1.0
    gc = cfg.guidance_config
    assert (gc.negative_prompt, gc.max_step_percent_annealed, gc.anneal_start_step) == ("a point cloud image", 0.55, 500)


def test_baseline_reference_settings_in_the_paper_preset():
    """The reference configs' settings win over the backbone's common guidance settings (docs/baselines.md)."""
    sdi = preset_config("paper", "gs", "sdi").guidance_config
    assert (sdi.min_step_percent, sdi.perp_neg, sdi.method_options) == (0.25, True, {"t_anneal_steps": 2500})
    asd = preset_config("paper", "nerf", "asd").guidance_config
    assert (asd.perp_neg, asd.perp_neg_scale) == (True, 0.5)
    ism = preset_config("paper", "gs", "ism").guidance_config
    assert (ism.max_step_percent_annealed, ism.anneal_start_step, ism.anneal_end_step) == (0.5, 0, 750)
    assert ism.negative_prompt == "a point cloud image"  # the backbone's common settings stay where not overridden
    assert preset_config("fast", "gs", "nfsd").guidance_config.perp_neg is False


def test_method_switches_parse_and_reject_unknown():
    assert split_method("lods-embedding+shared_draw") == ("lods-embedding", {"shared_draw": True})
    assert split_method("sds") == ("sds", {})
    assert split_method("lods-lora+lora_targets=all+lora_lr=3e-4+learned_draws=4") == (
        "lods-lora", {"lora_targets": "all", "lora_lr": 3e-4, "learned_draws": 4})
    assert split_method("sds+grad_clip=none") == ("sds", {"grad_clip": None})
    with pytest.raises(UserError, match="bad value"):
        split_method("lods-embedding+learned_draws=many")
    with pytest.raises(UserError, match="unknown switch"):
        split_method("lods-embedding+shared_draw=1")  # a boolean takes no value
    with pytest.raises(UserError, match="unknown switch"):
        split_method("sds+warp_speed")
    assert split_method("lods-embedding+no_time_offset") == ("lods-embedding", {"method_options": {"time_offset": False}})
    with pytest.raises(UserError, match="unknown switch"):
        split_method("sds+time_offset")  # another method's option


def test_option_switches_merge_into_the_preset():
    base = preset_config("fast", "gs", "sdi").guidance_config
    merged = apply_switches(base, split_method("sdi+shared_draw")[1])
    assert merged.shared_draw and merged.method_options == base.method_options
    fast = preset_config("fast", "gs", "lods-embedding").guidance_config
    assert fast.method_options == {}
    assert apply_switches(fast, split_method("lods-embedding+time_offset")[1]).method_options == {"time_offset": True}
    assert preset_config("paper", "gs", "lods-embedding").guidance_config.method_options == {}


# ------------------------------------------------------------------ LoRA initialisation
def test_lora_starts_as_the_reference_gaussian(prior):
    name = lora.add_lora(prior.unet, "probe", rank=4)
    layers = lora._lora_layers(prior.unet)
    a = torch.cat([m.lora_A[name].weight.flatten() for m in layers])
    b = torch.cat([m.lora_B[name].weight.flatten() for m in layers])
    assert a.std().item() == pytest.approx(1 / 4, rel=0.1)  # N(0, 1/r)
    assert abs(a.mean().item()) < 0.02
    assert torch.count_nonzero(b) == 0


# ------------------------------------------------------------------ VSD
def test_vsd_lora_branch_sees_the_view_independent_prompt(prior, monkeypatch):
    g = build_guidance("vsd", prior, PROMPT)
    seen = []
    real = g.lora_eps
    monkeypatch.setattr(g, "lora_eps", lambda z_t, t, cond, cams: seen.append((cond.clone(), cams.clone())) or real(z_t, t, cond, cams))
    cams = sample_cameras(CameraSamplerConfig(views_per_step=4), generator=torch.Generator().manual_seed(0))
    g(torch.rand(4, 3, 32, 32), cams, 0, generator=torch.Generator().manual_seed(1))
    assert len(seen) == 2
    for cond, _ in seen:
        assert torch.equal(cond, g.prompts.plain.expand(4, -1, -1))
    assert not torch.equal(g.prompts.conditional(cams, 4), g.prompts.plain.expand(4, -1, -1))  # views differ


def test_vsd_drops_the_camera_for_the_whole_batch(prior, monkeypatch):
    g = build_guidance("vsd", prior, PROMPT, GuidanceConfig(camera_dropout=0.5))
    cams = sample_cameras(CameraSamplerConfig(views_per_step=4), generator=torch.Generator().manual_seed(0))
    kept = []
    real = g.lora_eps
    monkeypatch.setattr(g, "lora_eps", lambda z_t, t, cond, c: kept.append(c.clone()) or real(z_t, t, cond, c))
    outcomes = set()
    for seed in range(12):
        kept.clear()
        g(torch.rand(4, 3, 32, 32), cams, 0, generator=torch.Generator().manual_seed(seed))
        zero_rows = (kept[1].abs().sum(1) == 0).tolist()  # the cameras of the training (second) call
        assert all(zero_rows) or not any(zero_rows)
        outcomes.add(all(zero_rows))
    assert outcomes == {True, False}  # p = 0.5 over 12 draws: both happen


# ------------------------------------------------------------------ the shared draw
@pytest.mark.parametrize("name", ["lods-embedding", "lods-lora"])
def test_shared_draw_equals_two_separate_passes_on_the_same_draw(prior, name):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32)
    t = torch.tensor([300, 700])
    noise = torch.randn(2, 3, 32, 32)
    g = build_guidance(name, prior, PROMPT, GuidanceConfig(shared_draw=True))
    if name == "lods-lora":  # a non-zero adapter, so the learned branch differs from the frozen one
        with torch.no_grad():
            for p in g.lora_params:
                p.add_(0.05 * torch.randn_like(p))
    xs = x.clone().requires_grad_(True)
    out = g(xs, None, 0, t=t, noise=noise)
    (out["loss_distill"] + out["loss_learned"]).backward()
    grads_shared = [p.grad.clone() for p in g.param_groups()[0]["params"]]
    for p in g.param_groups()[0]["params"]:
        p.grad = None

    # two separate passes on the same (t, ε): the no-grad branches, then the learned loss with grad
    z = prior.encode_images(x)
    z_t = prior.add_noise(z, noise, t)
    cond = g.prompts.conditional(None, 2)
    with torch.no_grad():
        eps_y, eps_learned = g.branches(z_t, t, cond)
    grad = lods_grad(eps_y, eps_learned, noise, g.guidance_scale, g.weight(t))
    loss_learned = F.mse_loss(g.learned_unconditional(z_t, t), noise)
    loss_learned.backward()
    assert out["loss_learned"].item() == pytest.approx(loss_learned.item(), rel=1e-5)
    assert torch.allclose(xs.grad, 2.0 * grad / 2, atol=1e-5)  # d loss_distill / dx = dz/dx · grad / B, z = 2x - 1
    for a, b in zip(grads_shared, [p.grad for p in g.param_groups()[0]["params"]]):
        assert torch.allclose(a, b, atol=1e-6, rtol=1e-4)


def test_shared_draw_makes_one_grad_pass_fewer(prior, monkeypatch):
    calls = {"n": 0, "samples": 0}
    real = prior.predict_noise

    def counting(z_t, *a, **k):
        calls["n"] += 1
        calls["samples"] += z_t.shape[0]
        return real(z_t, *a, **k)

    monkeypatch.setattr(prior, "predict_noise", counting)
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    build_guidance("lods-embedding", prior, PROMPT)(x, None, 0, generator=torch.Generator().manual_seed(0))
    default = dict(calls)
    calls.update(n=0, samples=0)
    build_guidance("lods-embedding", prior, PROMPT, GuidanceConfig(shared_draw=True))(x, None, 0, generator=torch.Generator().manual_seed(0))
    assert (default["samples"], calls["samples"]) == (6, 4)  # 2B + B against B + B


# ------------------------------------------------------------------ batched LoRA branches
def test_batched_lora_branches_equal_the_unbatched_calls(prior):
    g = build_guidance("lods-lora", prior, PROMPT)
    with torch.no_grad():
        for p in g.lora_params:
            p.add_(0.05 * torch.randn_like(p))
    z_t = torch.randn(3, 3, 32, 32)
    t = torch.tensor([100, 500, 900])
    cond = g.prompts.conditional(None, 3)
    with torch.no_grad():
        eps_y, eps_learned = g.branches(z_t, t, cond)
        eps_y1 = prior.predict_noise(z_t, t, cond)
        eps_l1 = prior.predict_noise(z_t, t, g.prompts.unconditional(3), lora_scale=0.5, adapter=g.adapter)
        eps_plain = prior.predict_noise(z_t, t, g.prompts.unconditional(3))
    assert torch.allclose(eps_y, eps_y1, atol=1e-5)
    assert torch.allclose(eps_learned, eps_l1, atol=1e-5)
    assert not torch.allclose(eps_learned, eps_plain, atol=1e-4)  # the adapter acts in the learned half


# ------------------------------------------------------------------ fp16 loss scaling
def test_learned_grad_scale_defaults():
    assert GuidanceConfig().learned_grad_scale is None
    with pytest.raises(UserError):
        GuidanceConfig(learned_grad_scale=math.inf).validate()


def test_scaled_backward_gives_the_exact_gradient(prior):
    """k × in the backward, ÷ k at the fp32 leaf: the embedding's gradient is the unscaled one (fp32 here)."""
    x = torch.rand(2, 3, 32, 32)
    grads = []
    for k in (1.0, 4096.0):
        g = build_guidance("lods-embedding", prior, PROMPT, GuidanceConfig(learned_grad_scale=k))
        out = g(x, None, 0, generator=torch.Generator().manual_seed(3))
        out["loss_learned"].backward()
        grads.append(g.embedding.grad.clone())
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-9)


def test_half_precision_embedding_gradient_points_where_fp32_does(tmp_path):
    """On a tiny SD-shaped (latent) model in fp16 on the CPU: the scaled gradient against the fp32 one."""
    from lods.evaluate.fp16_check import fp16_gradient_check

    folder = build_tiny_sd(tmp_path / "sd", latent=True)
    result = fp16_gradient_check(str(folder), device="cpu")
    assert result["scale"] == 1024.0  # the default for an fp16 prior
    assert result["cosine_scaled"] >= 0.99
    assert result["zero_fraction_scaled"] <= result["zero_fraction_unscaled"]
