"""DDIM inversion: one step is the DDIM formula; inverting and sampling back along the same timesteps gives the
input back (unconditional, conditional, with CFG); the η noise follows DDIM's posterior std."""

import pytest
import torch

from lods.priors.inversion import ddim_invert, ddim_timesteps, guided_eps_fn, inversion_noise_std
from lods.priors.prior import Prior
from lods.priors.tiny_sd import build_tiny_sd, build_tiny_world_prior


@pytest.fixture(scope="module")
def prior(tmp_path_factory):
    return Prior.load(str(build_tiny_sd(tmp_path_factory.mktemp("sd") / "px", latent=False)))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return Prior.load(str(build_tiny_world_prior(tmp_path_factory.mktemp("world") / "prior")))


def images(seed=0, b=2):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, 32, 32, generator=g) * 2 - 1


def test_timesteps():
    assert ddim_timesteps(500, 5) == [0, 100, 200, 300, 400, 500]
    assert ddim_timesteps(7, 2) == [0, 4, 7]
    with pytest.raises(ValueError):
        ddim_timesteps(500, 0)


def test_one_step_is_the_ddim_formula(prior):
    z = images()
    emb = prior.encode_text(["a red cube"])
    got = prior.ddim_invert(z, 300, 1, emb)
    a0, a1 = prior.alphas_cumprod[0], prior.alphas_cumprod[300]
    with torch.no_grad():
        eps = prior.unet(z, torch.tensor([0, 0]), encoder_hidden_states=emb.expand(2, -1, -1)).sample
    x0 = (z - (1 - a0).sqrt() * eps) / a0.sqrt()
    torch.testing.assert_close(got, a1.sqrt() * x0 + (1 - a1).sqrt() * eps, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", ["unconditional", "conditional", "cfg"])
def test_invert_then_sample_back_reproduces_the_input(world, mode):
    z = images()
    neg = world.encode_text([""])
    pos = world.encode_text(["a red cube"])
    kwargs = {"unconditional": dict(prompt_embeddings=neg), "conditional": dict(prompt_embeddings=pos),
              "cfg": dict(prompt_embeddings=pos, negative_embeddings=neg, cfg=3.0)}[mode]
    z_t = world.ddim_invert(z, 700, 50, **kwargs)
    back = world.ddim_sample_from(z_t, 700, 50, **kwargs)
    noised = (z_t - z).abs().mean()
    err = (back - z).abs().mean()
    assert noised > 0.3  # the inversion really moved z
    assert err < 0.08 * noised, (float(err), float(noised))  # the error shrinks as 1/steps (next test)


def test_more_steps_reproduce_better(world):
    z = images(1)
    emb = world.encode_text([""])
    errs = [float((world.ddim_sample_from(world.ddim_invert(z, 700, n, emb), 700, n, emb) - z).abs().mean()) for n in (8, 32)]
    assert errs[1] < errs[0] / 2.5, errs


def test_per_sample_timesteps_and_eta(prior):
    z = images()
    eps_fn = guided_eps_fn(prior, prior.encode_text([""]))
    stages = [torch.tensor([0, 0]), torch.tensor([200, 100]), torch.tensor([200, 400])]
    both = ddim_invert(prior, z, stages, eps_fn)
    first = ddim_invert(prior, z[:1], [0, 200], eps_fn)
    second = ddim_invert(prior, z[1:], [0, 100, 400], eps_fn)
    torch.testing.assert_close(both, torch.cat([first, second]), rtol=1e-4, atol=1e-5)
    # η: the deterministic move plus η σ ε', ε' from the generator
    noisy = ddim_invert(prior, z, [0, 300], eps_fn, eta=0.3, generator=torch.Generator().manual_seed(2))
    plain = ddim_invert(prior, z, [0, 300], eps_fn)
    extra = torch.randn(z.shape, generator=torch.Generator().manual_seed(2))
    std = inversion_noise_std(prior.alphas_cumprod[0], prior.alphas_cumprod[300])
    torch.testing.assert_close(noisy, plain + 0.3 * std * extra, rtol=1e-5, atol=1e-5)


def test_timestep_out_of_range(prior):
    with pytest.raises(ValueError):
        prior.ddim_invert(images(), 1000, 4, prior.encode_text([""]))
