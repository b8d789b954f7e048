import pytest
import torch

from lods.priors import lora
from lods.priors.prior import Prior
from lods.priors.tiny_sd import build_tiny_sd


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_tiny_sd(tmp_path_factory.mktemp("sd") / "px", latent=False)


def _randomize(unet, name, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in lora.lora_parameters(unet, name):
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def _inputs(prior):
    g = torch.Generator().manual_seed(1)
    z = torch.randn(2, 3, 32, 32, generator=g)
    return z, torch.tensor([50, 600]), prior.encode_text(["a red cube", ""])


def test_lora_targets_attention_and_starts_as_identity(folder):
    prior = Prior.load(str(folder))
    z, t, emb = _inputs(prior)
    base = prior.predict_noise(z, t, emb)
    name = lora.add_lora(prior.unet, "lods")
    params = lora.lora_parameters(prior.unet, name)
    # 4 projections × (A, B) per attention layer; only the LoRA is trainable
    n_attn = sum(1 for n, _ in prior.unet.named_modules() if n.endswith("attn1") or n.endswith("attn2"))
    assert len(params) == 8 * n_attn
    assert all(p.requires_grad for p in params)
    trainable = {id(p) for p in prior.unet.parameters() if p.requires_grad}
    assert trainable == {id(p) for p in params}
    ups = [p for n, p in prior.unet.named_parameters() if ".lora_B." in n]
    assert ups and all(torch.count_nonzero(p) == 0 for p in ups)
    torch.testing.assert_close(prior.predict_noise(z, t, emb, lora_scale=0.5, adapter=name), base)


def test_scale_zero_is_the_base_model(folder):
    prior = Prior.load(str(folder))
    z, t, emb = _inputs(prior)
    base = prior.predict_noise(z, t, emb)
    name = lora.add_lora(prior.unet, "lods")
    _randomize(prior.unet, name)
    with torch.no_grad():
        at0 = prior.predict_noise(z, t, emb, lora_scale=0.0, adapter=name)
        at05 = prior.predict_noise(z, t, emb, lora_scale=0.5, adapter=name)
        after = prior.predict_noise(z, t, emb)
    assert torch.equal(at0, base) and torch.equal(after, base)
    assert (at05 - base).abs().max() > 1e-3


def test_adapter_scale_matches_lora_formula_on_a_layer(folder):
    prior = Prior.load(str(folder))
    name = lora.add_lora(prior.unet, "lods", rank=4)
    _randomize(prior.unet, name)
    layer = next(m for n, m in prior.unet.named_modules() if n.endswith("attn1.to_q"))
    x = torch.randn(3, layer.in_features)
    with torch.no_grad():
        base = layer.base_layer(x)
        delta = layer.lora_B[name](layer.lora_A[name](x))  # alpha / r = 1
        with lora.adapter_scale(prior.unet, name, 0.5):
            torch.testing.assert_close(layer(x), base + 0.5 * delta)
        torch.testing.assert_close(layer(x), base)


def test_two_adapters_share_one_unet(folder):
    prior = Prior.load(str(folder))
    z, t, emb = _inputs(prior)
    a = lora.add_lora(prior.unet, "lods")
    b = lora.add_lora(prior.unet, "lods")
    assert a != b and lora.adapter_names(prior.unet) == [a, b]
    _randomize(prior.unet, a, seed=1)
    _randomize(prior.unet, b, seed=2)
    assert all(p.requires_grad for p in lora.lora_parameters(prior.unet, a) + lora.lora_parameters(prior.unet, b))
    with torch.no_grad():
        ea = prior.predict_noise(z, t, emb, lora_scale=1.0, adapter=a)
        eb = prior.predict_noise(z, t, emb, lora_scale=1.0, adapter=b)
    assert (ea - eb).abs().max() > 1e-3
    with pytest.raises(ValueError):
        prior.predict_noise(z, t, emb, lora_scale=1.0)  # ambiguous: two adapters


def test_save_load_roundtrip(folder, tmp_path):
    prior = Prior.load(str(folder))
    z, t, emb = _inputs(prior)
    name = lora.add_lora(prior.unet, "lods")
    _randomize(prior.unet, name)
    with torch.no_grad():
        want = prior.predict_noise(z, t, emb, lora_scale=0.5, adapter=name)
    lora.save_lora(prior.unet, name, tmp_path / "lora.safetensors")
    other = Prior.load(str(folder))
    name2 = lora.add_lora(other.unet, "lods")
    lora.load_lora(other.unet, name2, tmp_path / "lora.safetensors")
    with torch.no_grad():
        got = other.predict_noise(z, t, emb, lora_scale=0.5, adapter=name2)
    torch.testing.assert_close(got, want)
    with pytest.raises(ValueError, match="do not match"):
        lora.load_lora_state(other.unet, name2, {"bogus": torch.zeros(1)})


def test_all_targets_adapt_every_resnet_and_take_per_sample_scales(folder):
    prior = Prior.load(str(folder))
    z, t, emb = _inputs(prior)
    name = lora.add_lora(prior.unet, "lods", targets="all")
    adapted = {n.split(".lora_A.")[0] for n, _ in prior.unet.named_parameters() if f".lora_A.{name}." in n}
    resnet_convs = {n for n, m in prior.unet.named_modules() if n.endswith((".conv1", ".conv2")) and ".resnets." in n}
    assert resnet_convs and resnet_convs <= adapted  # every resolution, not only attention
    _randomize(prior.unet, name)
    with torch.no_grad():
        base = prior.predict_noise(z, t, emb)
        at05 = prior.predict_noise(z, t, emb, lora_scale=0.5, adapter=name)
        mixed = prior.predict_noise(z, t, emb, lora_scale=torch.tensor([0.0, 0.5]), adapter=name)
    torch.testing.assert_close(mixed[:1], base[:1])
    torch.testing.assert_close(mixed[1:], at05[1:])
    assert (at05 - base).abs().max() > 1e-3
    with pytest.raises(ValueError, match="unknown LoRA targets"):
        lora.add_lora(prior.unet, "x", targets="convs")
