"""`lods prior train-vae` and a latent prior on its latents, on a tiny budget: trains, exports, loads as Stable
Diffusion's layout does, samples to images, and resumes exactly."""

import pytest
import torch

from lods.pipelines.train_prior import TrainPriorConfig, train_prior
from lods.pipelines.train_vae import TrainVaeConfig, train_vae
from lods.priors.prior import Prior
from lods.priors.sampling import sample
from lods.utils.io import load_checkpoint


def tiny_vae(out, steps):
    return TrainVaeConfig(out=str(out), steps=steps, batch_size=4, data_scenes=3, views_per_scene=2, checkpoint_every=2, workers=1)


def test_vae_trains_exports_and_resumes_exactly(tmp_path):
    whole = train_vae(tiny_vae(tmp_path / "whole", 4))
    assert whole["step"] == 4 and len(whole["history"]) == 2 and whole["scaling_factor"] > 0
    train_vae(tiny_vae(tmp_path / "cut", 2))
    train_vae(tiny_vae(tmp_path / "cut", 4))
    a, _ = load_checkpoint(tmp_path / "whole" / "checkpoints" / "vae_last.safetensors")
    b, _ = load_checkpoint(tmp_path / "cut" / "checkpoints" / "vae_last.safetensors")
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(tmp_path / "whole" / "vae")
    assert vae.config.scaling_factor == pytest.approx(whole["scaling_factor"])


def test_latent_prior_trains_loads_and_samples(tmp_path):
    train_vae(tiny_vae(tmp_path / "vae", 2))
    cfg = TrainPriorConfig(out=str(tmp_path / "prior"), data_from=str(tmp_path / "vae"), steps=2, batch_size=4, data_scenes=3, views_per_scene=2, checkpoint_every=2,
                           workers=1, warmup_steps=2, vae_from=str(tmp_path / "vae" / "vae"))
    train_prior(cfg)  # on the renders the autoencoder was trained on (data_from)
    prior = Prior.load(str(tmp_path / "prior" / "prior"))
    assert prior.is_latent and prior.latent_channels == 4 and prior.latent_size == 16 and prior.image_size == 32
    assert prior.scheduler.config.clip_sample is False
    eps = prior.predict_noise(torch.zeros(1, 4, 16, 16), torch.tensor([500]), prior.encode_text(["a red cube"]))
    assert eps.shape == (1, 4, 16, 16) and torch.isfinite(eps).all()
    images = sample(prior, ["a red cube"], cfg=5.0, steps=2)
    assert images.shape == (1, 3, 32, 32)
    z = prior.encode_images(images)
    assert z.shape == (1, 4, 16, 16)

    again = TrainPriorConfig(**{**cfg.__dict__, "steps": 4, "vae_from": ""})  # the same folder as a pixel prior: refused
    with pytest.raises(ValueError, match="vae_from"):
        train_prior(again)
