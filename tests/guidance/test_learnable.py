"""Learnable parts: trained only by loss_learned, initialised correctly, stepped with the image in one step."""

import pytest
import torch
import torch.nn.functional as F

from lods.errors import UserError
from lods.guidance import GUIDANCES, GuidanceConfig, build_guidance
from lods.priors.prior import Prior

PROMPT = "a red cube"
LEARNABLE = ["lods-embedding", "lods-lora", "vsd"]


def params_of(guidance):
    return [p for group in guidance.param_groups() for p in group["params"]]


@pytest.mark.parametrize("name", LEARNABLE)
def test_no_sds_gradient_reaches_the_learnable_part(prior, name):
    g = build_guidance(name, prior, PROMPT)
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    out = g(x, None, 0, generator=torch.Generator().manual_seed(0))
    out["loss_distill"].backward(retain_graph=True)
    assert x.grad.abs().sum() > 0
    params = params_of(g)
    assert params and all(p.grad is None or torch.count_nonzero(p.grad) == 0 for p in params)
    out["loss_learned"].backward()
    assert any(p.grad is not None and torch.count_nonzero(p.grad) > 0 for p in params)


@pytest.mark.parametrize("name", LEARNABLE)
def test_one_step_updates_image_and_learnable_part(prior, name):
    g = build_guidance(name, prior, PROMPT)
    z = torch.nn.Parameter(torch.rand(1, 3, 32, 32) * 2 - 1)
    groups = [{"params": [z], "lr": 1e-2, "name": "image", "weight_decay": 0.0}] + g.param_groups()
    for group in g.param_groups():
        assert set(group) >= {"params", "lr", "name", "weight_decay"} and group["lr"] > 0
    before = [p.detach().clone() for p in [z] + params_of(g)]
    opt = torch.optim.AdamW(groups)
    out = g.forward_latents(z, None, 0, generator=torch.Generator().manual_seed(1))
    (out["loss_distill"] + out["loss_learned"]).backward()
    opt.step()
    after = [z] + params_of(g)
    assert not torch.equal(before[0], after[0].detach())
    assert any(not torch.equal(b, a.detach()) for b, a in zip(before[1:], after[1:]))


@pytest.mark.parametrize("name", ["lods-embedding", "lods-lora"])
def test_learned_warmup_trains_only_the_branch_first(prior, name):
    g = build_guidance(name, prior, PROMPT, GuidanceConfig(learned_warmup=2))
    z = torch.nn.Parameter(torch.rand(1, 3, 32, 32) * 2 - 1)
    opt = torch.optim.AdamW([{"params": [z], "lr": 1e-2, "weight_decay": 0.0}] + g.param_groups())
    start, branch = z.detach().clone(), [p.detach().clone() for p in params_of(g)]
    for step in range(3):
        out = g.forward_latents(z, None, step, generator=torch.Generator().manual_seed(step))
        assert (float(out["grad_norm"]) == 0.0) == (step < 2) and float(out["loss_learned"].detach()) > 0
        opt.zero_grad()
        (out["loss_distill"] + out["loss_learned"]).backward()
        opt.step()
        if step == 1:  # two warm-up steps: the image has not moved, the branch has
            assert torch.equal(z.detach(), start)
            assert any(not torch.equal(b, p.detach()) for b, p in zip(branch, params_of(g)))
    assert not torch.equal(z.detach(), start)


def test_learned_embedding_starts_at_the_negative_prompt(prior):
    g = build_guidance("lods-embedding", prior, PROMPT, GuidanceConfig(negative_prompt="blurry"))
    torch.testing.assert_close(g.embedding.detach(), prior.encode_text(["blurry"]))
    assert g.embedding.shape == (1, 77, 32) and g.embedding.requires_grad
    assert g.param_groups()[0]["lr"] == 1e-4
    assert build_guidance("lods-embedding", prior, PROMPT, GuidanceConfig(embedding_lr=1e-3)).param_groups()[0]["lr"] == 1e-3


@pytest.mark.parametrize("draws", [1, 3])
def test_loss_learned_is_the_denoising_loss_on_detached_renders(prior, draws):
    g = build_guidance("lods-embedding", prior, PROMPT, GuidanceConfig(learned_draws=draws))
    z = torch.rand(2, 3, 32, 32) * 2 - 1
    t, noise = torch.tensor([100, 200]), torch.randn(2, 3, 32, 32)
    out = g.forward_latents(z, None, 0, t=t, noise=noise, generator=torch.Generator().manual_seed(9))
    gen = torch.Generator().manual_seed(9)  # same draws: t' then ε', `draws` per render
    n = 2 * draws
    t_p = torch.randint(0, 1000, (n,), generator=gen)
    noise_p = torch.randn(n, 3, 32, 32, generator=gen)
    z_p = z.repeat(draws, 1, 1, 1)
    with torch.no_grad():
        pred = prior.predict_noise(prior.add_noise(z_p, noise_p, t_p), t_p, g.embedding.expand(n, -1, -1))
    torch.testing.assert_close(out["loss_learned"].detach(), F.mse_loss(pred, noise_p))


@pytest.mark.parametrize("name", LEARNABLE)
def test_state_dict_holds_every_learnable_tensor(folder, name):
    p1 = Prior.load(str(folder))
    g1 = build_guidance(name, p1, PROMPT)
    assert {id(p) for p in g1.parameters()} == {id(p) for p in params_of(g1)}
    with torch.no_grad():
        for p in params_of(g1):
            p.normal_()
    state = g1.state_dict()
    p2 = Prior.load(str(folder))
    g2 = build_guidance(name, p2, PROMPT)
    g2.load_state_dict(state)
    for a, b in zip(params_of(g1), params_of(g2)):
        torch.testing.assert_close(a, b)
    z, t = torch.rand(1, 3, 32, 32) * 2 - 1, torch.tensor([300])
    with torch.no_grad():  # the restored UNet adapter acts (state_dict reaches the tensors inside the UNet)
        e1 = g1.forward_latents(z, None, 0, t=t, noise=torch.zeros_like(z), generator=torch.Generator().manual_seed(0))
        e2 = g2.forward_latents(z, None, 0, t=t, noise=torch.zeros_like(z), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(e1["loss_distill"], e2["loss_distill"])
    torch.testing.assert_close(e1["loss_learned"], e2["loss_learned"])


def test_registry_and_unknown_name(prior):
    assert set(GUIDANCES) == {"sds", "csd", "lods-embedding", "lods-lora", "vsd", "ism", "sdi", "nfsd", "asd"}
    with pytest.raises(UserError, match="unknown guidance 'dreamtime'.*lods-embedding.*asd"):
        build_guidance("dreamtime", prior, PROMPT)


def test_default_scales_and_overrides(prior):
    assert build_guidance("sds", prior, PROMPT).guidance_scale == 100.0
    assert build_guidance("lods-embedding", prior, PROMPT).guidance_scale == 1000.0
    assert build_guidance("csd", prior, PROMPT).guidance_scale is None
    assert build_guidance("sds", prior, PROMPT, GuidanceConfig(guidance_scale=7.0)).guidance_scale == 7.0
    prior.extra["guidance_scales"] = {"sds": 20}
    assert build_guidance("sds", prior, PROMPT).guidance_scale == 20.0


@pytest.mark.parametrize(
    "bad", [dict(guidance_scale=0.0), dict(guidance_scale=-3.0), dict(min_step_percent=0.9, max_step_percent=0.5),
            dict(grad_clip=0.0), dict(embedding_lr=-1.0), dict(lora_lr=0.0), dict(camera_dropout=1.0),
            dict(learned_draws=0), dict(learned_draws=2, shared_draw=True), dict(lora_targets="convs"),
            dict(learned_warmup=-1)]
)
def test_bad_config_is_user_error(prior, bad):
    with pytest.raises(UserError):
        build_guidance("sds", prior, PROMPT, GuidanceConfig(**bad))


def test_empty_prompt_is_user_error(prior):
    with pytest.raises(UserError, match="empty"):
        build_guidance("sds", prior, "   ")


def test_time_offset_starts_at_zero_and_moves_only_the_learned_branch(prior):
    """The option adds a learned timestep-embedding offset to the learned branch alone; zero at the start, so the
    method begins exactly where plain LODS-embedding does."""
    plain = build_guidance("lods-embedding", prior, PROMPT)
    g = build_guidance("lods-embedding", prior, PROMPT, GuidanceConfig(method_options={"time_offset": True}))
    assert plain.time_offset is None and g.time_offset.shape == (prior.unet.time_embedding.linear_2.out_features,)
    assert any(p is g.time_offset for p in params_of(g))
    z_t, t = torch.rand(2, 3, 32, 32) * 2 - 1, torch.tensor([300, 600])
    cond = g.prompts.conditional(None, 2)
    with torch.no_grad():
        torch.testing.assert_close(g.branches(z_t, t, cond)[1], plain.branches(z_t, t, cond)[1])
        g.time_offset.fill_(0.5)
        eps_y, eps_learned = g.branches(z_t, t, cond)
        torch.testing.assert_close(eps_y, plain.branches(z_t, t, cond)[0])  # the frozen conditional branch
        assert (eps_learned - plain.branches(z_t, t, cond)[1]).abs().max() > 1e-4
        torch.testing.assert_close(eps_learned, g.learned_unconditional(z_t, t), atol=1e-5, rtol=1e-4)
    F.mse_loss(g.learned_unconditional(z_t, t), torch.randn_like(z_t)).backward()
    assert g.time_offset.grad is not None and torch.count_nonzero(g.time_offset.grad) > 0
    assert len(prior.unet.time_embedding._forward_hooks) == 0  # no hook left behind
