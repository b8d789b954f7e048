"""The embedded prior's conditioning path and its warm start from an earlier prior."""

import pytest
import torch

from lods.priors import embedded
from lods.world.scene import VOCABULARY


def _block_outputs(unet, x, t, emb) -> dict:
    """The outputs of the UNet's 32² blocks (the first down block's ResNet, before it downsamples; the last up block)."""
    seen = {}
    hooks = [unet.down_blocks[0].resnets[0].register_forward_hook(lambda m, i, o: seen.__setitem__("down32", o)),
             unet.up_blocks[-1].register_forward_hook(lambda m, i, o: seen.__setitem__("up32", o))]
    try:
        unet(x, t, encoder_hidden_states=emb)
    finally:
        for h in hooks:
            h.remove()
    return seen


@torch.no_grad()
def test_the_text_embedding_reaches_the_32px_blocks():
    x = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([500])
    a = torch.randn(1, embedded.CONTEXT_LENGTH, embedded.TEXT_WIDTH, generator=torch.Generator().manual_seed(1))
    b = torch.randn(1, embedded.CONTEXT_LENGTH, embedded.TEXT_WIDTH, generator=torch.Generator().manual_seed(2))
    for pooled_text in (True, False):
        unet = embedded.build_unet(seed=0, pooled_text=pooled_text)
        out_a, out_b = _block_outputs(unet, x, t, a), _block_outputs(unet, x, t, b)
        assert out_a["down32"].shape[-1] == 32 and out_a["up32"].shape[-1] == 32
        changed = (out_a["down32"] - out_b["down32"]).abs().max() > 1e-4
        assert changed == pooled_text  # without the pooled path the text reaches only the 8² and 4² blocks


@torch.no_grad()
def test_warm_start_keeps_every_old_weight_and_adds_a_word(tmp_path):
    old_vocab = [w for w in VOCABULARY if w != "object"]
    tok_old = embedded.build_tokenizer(old_vocab)
    te_old = embedded.build_text_encoder(tok_old, seed=1)
    unet_old = embedded.build_unet(seed=1, pooled_text=False)
    embedded.save_prior_folder(tmp_path / "old", unet_old, te_old, tok_old, embedded.build_scheduler(), dtype=torch.float32)

    tok = embedded.build_tokenizer(VOCABULARY)
    te = embedded.build_text_encoder(tok, seed=2)
    unet = embedded.build_unet(seed=2)
    report = embedded.warm_start(unet, te, tok, tmp_path / "old")
    assert report["new_words"] == ["object"]
    assert report["new_unet_tensors"] and all(k.startswith("add_embedding.") for k in report["new_unet_tensors"])

    prompt = ["a red cube to the left of a blue sphere"]
    e_old = te_old(tok_old(prompt, padding="max_length", max_length=embedded.CONTEXT_LENGTH, return_tensors="pt").input_ids)[0]
    e_new = te(tok(prompt, padding="max_length", max_length=embedded.CONTEXT_LENGTH, return_tensors="pt").input_ids)[0]
    assert torch.equal(e_old, e_new)
    state_old, state_new = unet_old.state_dict(), unet.state_dict()
    assert all(torch.equal(state_old[k], state_new[k]) for k in state_old)  # every old tensor, exactly
    x, t = torch.randn(2, 3, 32, 32), torch.tensor([100, 700])
    with torch.no_grad():
        unet.add_embedding.norm2.weight.zero_()  # with the new path silenced it is the old function
    assert torch.equal(unet_old(x, t, encoder_hidden_states=e_old.expand(2, -1, -1)).sample,
                       unet(x, t, encoder_hidden_states=e_new.expand(2, -1, -1)).sample)


def test_the_pooled_path_starts_live():
    unet = embedded.build_unet(seed=0)
    assert unet.add_embedding.norm2.weight.abs().min() > 0  # not a zero gain that training would leave near zero


@torch.no_grad()
def test_cross_attention_from_16_reaches_the_16px_blocks():
    x, t = torch.randn(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)), torch.tensor([500])
    a = torch.randn(1, embedded.CONTEXT_LENGTH, embedded.TEXT_WIDTH, generator=torch.Generator().manual_seed(1))
    b = torch.randn(1, embedded.CONTEXT_LENGTH, embedded.TEXT_WIDTH, generator=torch.Generator().manual_seed(2))
    for level in (8, 16):
        unet = embedded.build_unet(seed=0, pooled_text=False, cross_attention_from=level)
        seen = []  # the 16² block's first skip output (after its attention, when it has one)
        hook = unet.down_blocks[1].register_forward_hook(lambda m, i, o: seen.append(o[1][0]))
        unet(x, t, encoder_hidden_states=a)
        unet(x, t, encoder_hidden_states=b)
        hook.remove()
        assert seen[0].shape[-1] == 16
        assert bool((seen[0] - seen[1]).abs().max() > 1e-4) == (level == 16)  # without it the text stops at 8²
    with pytest.raises(ValueError, match="choose one of"):
        embedded.build_unet(cross_attention_from=12)


@torch.no_grad()
def test_warm_start_into_cross_attention_from_16_adds_only_the_16px_attention(tmp_path):
    tok = embedded.build_tokenizer(VOCABULARY)
    unet_old = embedded.build_unet(seed=1)
    embedded.save_prior_folder(tmp_path / "v2", unet_old, embedded.build_text_encoder(tok, seed=1), tok,
                               embedded.build_scheduler(), dtype=torch.float32)
    unet = embedded.build_unet(seed=2, cross_attention_from=16)
    report = embedded.warm_start(unet, embedded.build_text_encoder(tok, seed=2), tok, tmp_path / "v2")
    new = report["new_unet_tensors"]
    assert new and all(k.startswith(("down_blocks.1.attentions.", "up_blocks.2.attentions.")) for k in new)
    state_old, state_new = unet_old.state_dict(), unet.state_dict()
    assert all(torch.equal(state_old[k], state_new[k]) for k in state_old)


def test_the_embedded_latent_prior_loads_by_name_and_round_trips_a_render():
    """`--prior embedded-latent`: the packaged latent prior, Stable Diffusion's layout with its autoencoder; its
    autoencoder gives back a world render closely (at least 25 dB)."""
    import math

    from lods.priors.embedded import EMBEDDED_LATENT_PRIOR_DIR, prior_folder
    from lods.priors.prior import Prior
    from lods.render.cameras import evaluation_cameras
    from lods.world.render import render_scene
    from lods.world.scene import parse_prompt

    assert prior_folder("embedded-latent") == EMBEDDED_LATENT_PRIOR_DIR
    prior = Prior.load("embedded-latent")
    assert prior.is_latent and prior.latent_size == 16 and prior.image_size == 32 and "object" in prior.vocabulary
    rgb = render_scene(parse_prompt("a red cube")[0], evaluation_cameras(1), size=32)["rgb"]
    with torch.no_grad():
        back = prior.decode(prior.encode_images(rgb))
    mse = float(((back - rgb) ** 2).mean())
    assert 10 * math.log10(1.0 / mse) > 25
