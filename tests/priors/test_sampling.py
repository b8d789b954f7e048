from types import SimpleNamespace

import pytest
import torch
from diffusers import DDPMScheduler

from lods.priors.sampling import sample


def biased_oracle_prior(bias: float):
    """A pixel prior whose data is one white image; its noise prediction is exact, minus `bias` at high noise,
    which pushes the predicted x0 above 1 (where the sampler clips it)."""
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", clip_sample=True)
    alphas = scheduler.alphas_cumprod
    white = torch.ones(1, 3, 8, 8)

    def predict_noise(z, t, emb):
        a = alphas[t.long()].view(-1, 1, 1, 1)
        eps = (z - a.sqrt() * white) / (1 - a).sqrt()
        return eps - bias * (t.view(-1, 1, 1, 1) > 500).float()

    return SimpleNamespace(
        scheduler=scheduler, is_latent=False, device=torch.device("cpu"), default_negative_prompt="",
        unet=SimpleNamespace(config=SimpleNamespace(in_channels=3, sample_size=8)),
        encode_text=lambda prompts: torch.zeros(len(prompts), 2, 4),
        predict_noise=predict_noise, decode=lambda z: (z + 1) / 2,
    )


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_clipped_x0_gives_the_clean_image_despite_a_biased_noise_prediction(eta):
    images = sample(biased_oracle_prior(bias=0.5), ["a"] * 4, cfg=5.0, steps=20, eta=eta)
    assert images.shape == (4, 3, 8, 8)
    assert (images - 1).abs().max() < 1e-3


def test_the_same_seed_gives_the_same_samples():
    prior = biased_oracle_prior(bias=0.0)
    a = sample(prior, ["a"] * 2, steps=5, seed=3)
    b = sample(prior, ["a"] * 2, steps=5, seed=3)
    assert torch.equal(a, b)


def test_pixel_priors_step_with_the_noise_of_the_clipped_x0(monkeypatch):
    # diffusers clips x0 but by default steps with the raw noise; that left blotchy backgrounds at CFG 5
    from diffusers import DDIMScheduler

    calls = []
    step = DDIMScheduler.step

    def spy(self, *args, **kwargs):
        calls.append(kwargs.get("use_clipped_model_output"))
        return step(self, *args, **kwargs)

    monkeypatch.setattr(DDIMScheduler, "step", spy)
    sample(biased_oracle_prior(bias=0.0), ["a"], steps=3)
    assert calls == [True, True, True]
