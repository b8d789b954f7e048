import json

import torch

from lods.priors.tiny_sd import build_tiny_sd, sd21_unet_config


def test_tiny_sd_folder_loads_in_diffusers_pipeline(tmp_path):
    from diffusers import StableDiffusionPipeline
    from transformers import CLIPTokenizer

    folder = build_tiny_sd(tmp_path / "sd", latent=True)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["vae"] == ["diffusers", "AutoencoderKL"]
    pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None)
    assert isinstance(pipe.tokenizer, CLIPTokenizer)
    ids = pipe.tokenizer("a red cube").input_ids
    assert ids[0] == pipe.tokenizer.bos_token_id and ids[-1] == pipe.tokenizer.eos_token_id
    assert pipe.tokenizer.unk_token_id not in ids[1:-1]  # byte-level BPE covers any text (CLIP's unk is its eos)
    assert pipe.tokenizer.decode(ids, skip_special_tokens=True) == "a red cube"
    images = pipe("a red cube", num_inference_steps=2, output_type="np", height=32, width=32).images
    assert images.shape == (1, 32, 32, 3)


def test_pixel_folder_has_no_vae(tmp_path):
    folder = build_tiny_sd(tmp_path / "px", latent=False)
    assert not (folder / "vae").exists()
    assert json.loads((folder / "unet" / "config.json").read_text())["in_channels"] == 3


def test_sd21_unet_config_has_sd21_size():
    from diffusers import UNet2DConditionModel

    with torch.device("meta"):
        unet = UNet2DConditionModel(**sd21_unet_config())
    n = sum(p.numel() for p in unet.parameters())
    assert n == 865_910_724  # Stable Diffusion 2.1-base's UNet
    assert unet.config.cross_attention_dim == 1024 and unet.config.sample_size == 64
