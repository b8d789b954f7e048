import torch
import pytest

from lods.errors import UserError
from lods.priors.prior import Prior
from lods.priors.tiny_sd import build_tiny_sd, build_tiny_world_prior


@pytest.fixture(scope="module")
def sd_folder(tmp_path_factory):
    return build_tiny_sd(tmp_path_factory.mktemp("sd") / "tiny-sd", latent=True)


@pytest.fixture(scope="module")
def world_folder(tmp_path_factory):
    return build_tiny_world_prior(tmp_path_factory.mktemp("world") / "prior")


def test_latent_prior_loads_sd_layout(sd_folder):
    prior = Prior.load(str(sd_folder))
    assert prior.is_latent and prior.image_size == 32 and prior.latent_size == 16 and prior.latent_channels == 4
    assert prior.dtype == torch.float32 and prior.device.type == "cpu"
    assert prior.vocabulary is None and prior.default_negative_prompt == ""
    assert prior.alphas_cumprod.dtype == torch.float32 and prior.alphas_cumprod.shape == (1000,)
    assert not any(p.requires_grad for m in (prior.unet, prior.text_encoder, prior.vae) for p in m.parameters())
    emb = prior.encode_text(["a red cube", ""])
    assert emb.shape == (2, 77, 32) and emb.dtype == torch.float32
    assert not torch.allclose(emb[0], emb[1])


def test_latent_encode_is_differentiable_and_resizes(sd_folder):
    prior = Prior.load(str(sd_folder))
    x = torch.rand(2, 3, 64, 64, requires_grad=True)
    z = prior.encode_images(x)
    assert z.shape == (2, 4, 16, 16)
    z.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    img = prior.decode(z.detach())
    assert img.shape == (2, 3, 32, 32) and 0 <= img.min() and img.max() <= 1
    # the latent is the VAE posterior mean times the scaling factor
    x32 = torch.nn.functional.interpolate(x.detach(), (32, 32), mode="bilinear", align_corners=False)
    mean = prior.vae.encode(2 * x32 - 1).latent_dist.mean * prior.vae.config.scaling_factor
    torch.testing.assert_close(z.detach(), mean)


def test_pixel_world_prior(world_folder):
    prior = Prior.load(str(world_folder))
    assert not prior.is_latent and prior.image_size == 32 and prior.kind == "world"
    assert "cube" in prior.vocabulary and prior.default_negative_prompt == ""
    x = torch.rand(1, 3, 32, 32)
    torch.testing.assert_close(prior.encode_images(x), 2 * x - 1)
    torch.testing.assert_close(prior.decode(2 * x - 1), x)
    assert prior.encode_text(["a red cube, front view"]).shape == (1, 24, 128)


def test_check_prompt(world_folder, sd_folder):
    prior = Prior.load(str(world_folder))
    prior.check_prompt("a red cube, front view")
    with pytest.raises(UserError, match="the prompt is empty"):
        prior.check_prompt("  ")
    prior.check_prompt("", allow_empty=True)
    with pytest.raises(UserError) as e:
        prior.check_prompt("a crimson cube wearing hats")
    msg = str(e.value)
    assert "crimson" in msg and "hats" in msg and "cube" in msg.split("known words:")[1]
    Prior.load(str(sd_folder)).check_prompt("a crimson cube wearing hats")  # open vocabulary


def test_add_noise_and_predict_noise(world_folder):
    from diffusers import DDPMScheduler

    prior = Prior.load(str(world_folder))
    sched = DDPMScheduler.from_pretrained(world_folder, subfolder="scheduler")
    z = torch.randn(2, 3, 32, 32)
    noise = torch.randn_like(z)
    t = torch.tensor([3, 900])
    torch.testing.assert_close(prior.add_noise(z, noise, t), sched.add_noise(z, noise, t))
    emb = prior.encode_text(["a red cube", ""])
    eps = prior.predict_noise(z, t, emb)
    torch.testing.assert_close(eps, prior.unet(z, t, encoder_hidden_states=emb).sample)
    eps_scalar_t = prior.predict_noise(z, torch.tensor(5), emb)
    torch.testing.assert_close(eps_scalar_t, prior.unet(z, torch.tensor([5, 5]), encoder_hidden_states=emb).sample)


def test_missing_folder_is_user_error(tmp_path):
    with pytest.raises(UserError, match="not found"):
        Prior.load(str(tmp_path / "nope" / "deeper" / "x"))


def test_file_is_user_error(tmp_path):
    f = tmp_path / "weights.bin"
    f.write_text("x")
    with pytest.raises(UserError, match="not a diffusers model folder"):
        Prior.load(str(f))


def test_folder_without_unet_is_user_error(tmp_path, sd_folder):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(sd_folder, bad)
    shutil.rmtree(bad / "unet")
    with pytest.raises(UserError, match=r"not a diffusers model folder \(missing unet\)"):
        Prior.load(str(bad))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="missing model_index.json"):
        Prior.load(str(tmp_path / "empty"))


def test_corrupt_weights_are_user_error(tmp_path, sd_folder):
    import shutil

    bad = tmp_path / "corrupt"
    shutil.copytree(sd_folder, bad)
    (bad / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(UserError, match="not a loadable diffusers model") as e:
        Prior.load(str(bad))
    assert str(bad) in str(e.value) and "\n" not in str(e.value)


def test_uncached_hub_id_offline_is_user_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="could not be found locally and there is no network"):
        Prior.load("nobody-lods-test/no-such-model")


def test_embedded_prior_missing_is_user_error(monkeypatch, tmp_path):
    import lods.priors.embedded as embedded

    monkeypatch.setattr(embedded, "EMBEDDED_PRIOR_DIR", tmp_path / "absent")
    monkeypatch.setitem(embedded.EMBEDDED_NAMES, "embedded-latent", tmp_path / "absent-latent")
    with pytest.raises(UserError, match="embedded prior is not installed"):
        Prior.load(None)
    with pytest.raises(UserError, match="embedded prior is not installed"):
        Prior.load("embedded-latent")
