"""The gradient each guidance sends to the image equals its formula (docs/algorithm.md), computed here directly
from the diffusers modules with the same t and ε."""

import math

import pytest
import torch
from diffusers import DDPMScheduler

from lods.guidance import GuidanceConfig, build_guidance
from lods.priors import lora
from lods.render.cameras import orbit_cameras

PROMPT = "a red cube"
B = 2


def embed(prior, texts):
    ids = prior.tokenizer(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
    with torch.no_grad():
        return prior.text_encoder(ids).last_hidden_state


def setup(folder, prior, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(B, 3, 32, 32, generator=g).requires_grad_(True)
    t = torch.tensor([120, 730])
    noise = torch.randn(B, 3, 32, 32, generator=g)
    abar = DDPMScheduler.from_pretrained(folder, subfolder="scheduler").alphas_cumprod[t].view(-1, 1, 1, 1)
    z = 2 * x.detach() - 1
    z_t = abar.sqrt() * z + (1 - abar).sqrt() * noise
    return x, t, noise, z_t, (1 - abar)


def unet_eps(prior, z_t, t, emb):
    with torch.no_grad():
        return prior.unet(z_t, t, encoder_hidden_states=emb.expand(B, -1, -1)).sample


def image_grad(guidance, x, t, noise, cameras=None):
    out = guidance(x, cameras, 0, t=t, noise=noise, generator=torch.Generator().manual_seed(7))
    out["loss_distill"].backward()
    return x.grad, out


def assert_image_grad(got, grad_z):
    # z = 2x - 1 and d loss_distill / dz = grad / B; batched vs single UNet calls differ by float rounding,
    # which the CFG scale amplifies, hence a tolerance relative to the gradient's size
    want = 2 * grad_z / B
    torch.testing.assert_close(got, want, rtol=1e-3, atol=2e-4 * float(want.abs().max()) + 1e-7)


def test_sds(folder, prior):
    x, t, noise, z_t, w = setup(folder, prior)
    g = build_guidance("sds", prior, PROMPT, GuidanceConfig(guidance_scale=100.0))
    got, out = image_grad(g, x, t, noise)
    eps_y = unet_eps(prior, z_t, t, embed(prior, [PROMPT]))
    eps_n = unet_eps(prior, z_t, t, embed(prior, [""]))
    assert_image_grad(got, w * (eps_n + 100.0 * (eps_y - eps_n) - noise))
    assert torch.equal(out["t"], t)
    loss_expected = 0.5 * (w * (eps_n + 100.0 * (eps_y - eps_n) - noise)).square().sum() / B
    torch.testing.assert_close(out["loss_distill"].detach(), loss_expected, rtol=1e-4, atol=1e-6)


def test_csd(folder, prior):
    x, t, noise, z_t, w = setup(folder, prior)
    g = build_guidance("csd", prior, PROMPT)
    got, _ = image_grad(g, x, t, noise)
    eps_y = unet_eps(prior, z_t, t, embed(prior, [PROMPT]))
    eps_n = unet_eps(prior, z_t, t, embed(prior, [""]))
    assert_image_grad(got, w * (eps_y - eps_n))


@pytest.mark.parametrize("scale", [100.0, 1000.0, math.inf])
def test_lods_embedding(folder, prior, scale):
    x, t, noise, z_t, w = setup(folder, prior)
    g = build_guidance("lods-embedding", prior, PROMPT, GuidanceConfig(guidance_scale=scale))
    with torch.no_grad():  # move the learned embedding away from its initial value
        g.embedding.add_(0.5 * torch.randn(g.embedding.shape, generator=torch.Generator().manual_seed(3)))
    got, _ = image_grad(g, x, t, noise)
    eps_y = unet_eps(prior, z_t, t, embed(prior, [PROMPT]))
    eps_psi = unet_eps(prior, z_t, t, g.embedding.detach())
    if math.isinf(scale):
        expected = w * (eps_y - eps_psi)
    else:
        expected = w * (eps_y + (1 - scale) / scale * eps_psi - noise / scale)
    assert_image_grad(got, expected)
    assert (eps_psi - unet_eps(prior, z_t, t, embed(prior, [""]))).abs().max() > 1e-4  # the test can see ψ


def test_lods_large_scale_approaches_the_infinite_limit(folder, prior):
    x, t, noise, _, _ = setup(folder, prior)
    grads = {}
    for scale in (1e6, math.inf):
        g = build_guidance("lods-embedding", prior, PROMPT, GuidanceConfig(guidance_scale=scale))
        xx = x.detach().clone().requires_grad_(True)
        grads[scale], _ = image_grad(g, xx, t, noise)
    torch.testing.assert_close(grads[1e6], grads[math.inf], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("scale", [100.0, math.inf])
def test_lods_lora(folder, prior, scale):
    x, t, noise, z_t, w = setup(folder, prior)
    g = build_guidance("lods-lora", prior, PROMPT, GuidanceConfig(guidance_scale=scale))
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for p in lora.lora_parameters(prior.unet, g.adapter):
            p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    got, _ = image_grad(g, x, t, noise)
    eps_y = unet_eps(prior, z_t, t, embed(prior, [PROMPT]))  # adapter silent outside adapter_scale
    with lora.adapter_scale(prior.unet, g.adapter, 0.5):
        eps_psi = unet_eps(prior, z_t, t, embed(prior, [""]))
    if math.isinf(scale):
        expected = w * (eps_y - eps_psi)
    else:
        expected = w * (eps_y + (1 - scale) / scale * eps_psi - noise / scale)
    assert_image_grad(got, expected)
    assert (eps_psi - unet_eps(prior, z_t, t, embed(prior, [""]))).abs().max() > 1e-4


def test_vsd(folder, prior):
    x, t, noise, z_t, w = setup(folder, prior)
    g = build_guidance("vsd", prior, PROMPT, GuidanceConfig(view_dependent_prompting=False))
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in lora.lora_parameters(prior.unet, g.adapter) + list(g.camera_mlp.parameters()):
            p.copy_(0.3 * torch.randn(p.shape, generator=gen))
    cameras = orbit_cameras(torch.tensor([10.0, 30.0]), torch.tensor([0.0, 120.0]), 2.5, 40.0)
    got, _ = image_grad(g, x, t, noise, cameras)
    cond, null = embed(prior, [PROMPT]), embed(prior, [""])
    eps_y, eps_n = unet_eps(prior, z_t, t, cond), unet_eps(prior, z_t, t, null)
    # the camera MLP through diffusers' own class-embedding path (added to the timestep embedding)
    prior.unet.class_embedding = g.camera_mlp
    try:
        with lora.adapter_scale(prior.unet, g.adapter, 1.0), torch.no_grad():
            eps_lora = prior.unet(z_t, t, encoder_hidden_states=cond.expand(B, -1, -1), class_labels=cameras.c2w.reshape(B, 16)).sample
    finally:
        prior.unet.class_embedding = None
    assert_image_grad(got, w * (eps_n + 7.5 * (eps_y - eps_n) - eps_lora))
    # the camera hook is gone after the call
    assert not prior.unet.time_embedding._forward_hooks


def test_grad_clip_and_a_nan_gradient_is_not_hidden():
    from lods.guidance.base import distillation_loss

    z = torch.zeros(2, 1, 2, 2, requires_grad=True)
    grad = torch.tensor([5.0, -5.0, 0.25, 0.5]).view(1, 1, 2, 2).expand(2, 1, 2, 2)
    loss, used = distillation_loss(z, grad, clip=1.0)
    loss.backward()
    expected = torch.tensor([1.0, -1.0, 0.25, 0.5]).view(1, 1, 2, 2).expand(2, 1, 2, 2)
    torch.testing.assert_close(used, expected)
    torch.testing.assert_close(z.grad, expected / 2)
    torch.testing.assert_close(loss, 0.5 * expected.square().sum() / 2)
    # a NaN in the gradient reaches the loss (the loop then stops with Diverged) instead of silently becoming 0
    nan_grad = grad.clone()
    nan_grad[:, :, 1, 0] = float("nan")
    loss, _ = distillation_loss(z, nan_grad, clip=1.0)
    assert not torch.isfinite(loss)
