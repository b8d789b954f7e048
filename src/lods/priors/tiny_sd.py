"""Tiny Stable-Diffusion-shaped pipeline folders with random weights, for tests and cost benchmarks.

`build_tiny_sd` writes the same folder layout as a Stable Diffusion checkpoint (model_index.json, unet/,
text_encoder/, tokenizer/ with a real byte-level BPE CLIPTokenizer, scheduler/, and vae/ when latent), at a
size a CPU runs in milliseconds. `sd21_unet_config` is the UNet config of SD 2.1-base, to measure the true cost
of a UNet pass without downloading any weights.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

TINY_IMAGE_SIZE = 32
TINY_TEXT_WIDTH = 32
TINY_CONTEXT = 77  # SD's context length
_MERGES = ("t h", "th e</w>", "r e", "re d</w>", "c u", "cu b", "cub e</w>")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def write_tiny_bpe(folder: Path) -> None:
    """A tiny CLIP BPE vocabulary: every byte alone and at a word's end, a few merges, the special tokens."""
    chars = list(_bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars]
    tokens += [a + b for a, b in (m.split() for m in _MERGES)]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(tokens))}
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(_MERGES) + "\n")


def sd21_unet_config() -> dict:
    """The UNet2DConditionModel config of Stable Diffusion 2.1-base (865.9M parameters)."""
    return {
        "sample_size": 64,
        "in_channels": 4,
        "out_channels": 4,
        "center_input_sample": False,
        "flip_sin_to_cos": True,
        "freq_shift": 0,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
        "block_out_channels": [320, 640, 1280, 1280],
        "layers_per_block": 2,
        "downsample_padding": 1,
        "mid_block_scale_factor": 1,
        "act_fn": "silu",
        "norm_num_groups": 32,
        "norm_eps": 1e-5,
        "cross_attention_dim": 1024,
        "attention_head_dim": [5, 10, 20, 20],
        "dual_cross_attention": False,
        "use_linear_projection": True,
    }


def sd21_vae_config() -> dict:
    """The AutoencoderKL config shared by SD 1.x/2.x (8× downsampling, 4 latent channels)."""
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 4,
        "up_block_types": ["UpDecoderBlock2D"] * 4,
        "block_out_channels": [128, 256, 512, 512],
        "layers_per_block": 2,
        "act_fn": "silu",
        "latent_channels": 4,
        "norm_num_groups": 32,
        "sample_size": 768,
        "scaling_factor": 0.18215,
    }


def _tiny_unet_config(latent: bool) -> dict:
    return {
        "sample_size": TINY_IMAGE_SIZE // 2 if latent else TINY_IMAGE_SIZE,
        "in_channels": 4 if latent else 3,
        "out_channels": 4 if latent else 3,
        # cross-attention at the 16² level only, so a CPU runs it fast at either size
        "down_block_types": ["CrossAttnDownBlock2D", "DownBlock2D"] if latent else ["DownBlock2D", "CrossAttnDownBlock2D"],
        "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D"] if latent else ["CrossAttnUpBlock2D", "UpBlock2D"],
        "block_out_channels": [16, 32],
        "layers_per_block": 1,
        "norm_num_groups": 8,
        "cross_attention_dim": TINY_TEXT_WIDTH,
        "attention_head_dim": 8,
    }


def _tiny_vae_config() -> dict:
    return {
        "in_channels": 3,
        "out_channels": 3,
        "down_block_types": ["DownEncoderBlock2D"] * 2,
        "up_block_types": ["UpDecoderBlock2D"] * 2,
        "block_out_channels": [8, 16],  # 2 blocks: 2× downsampling, 32² images ↔ 16² latents
        "layers_per_block": 1,
        "latent_channels": 4,
        "norm_num_groups": 8,
        "sample_size": TINY_IMAGE_SIZE,
    }


def build_tiny_sd(folder, latent: bool = True, seed: int = 0, sd21: bool = False) -> Path:
    """Write a Stable-Diffusion-layout pipeline folder with random weights and return its path.

    latent=True: AutoencoderKL + 4-channel UNet (32² images, 16² latents), loadable by diffusers'
    StableDiffusionPipeline. latent=False: no VAE, a 3-channel pixel-space UNet at 32².
    sd21=True (latent only): SD 2.1-base's UNet and VAE at full size (512² images; about 3.5 GB in fp32).
    """
    from diffusers import AutoencoderKL, DDPMScheduler, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    if sd21 and not latent:
        raise ValueError("the SD 2.1-shaped folder is latent")
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)

    write_tiny_bpe(tmp / "tokenizer")
    tokenizer = CLIPTokenizer.from_pretrained(tmp / "tokenizer", model_max_length=TINY_CONTEXT, trust_remote_code=False)
    unet_config = sd21_unet_config() if sd21 else _tiny_unet_config(latent)
    text_width = unet_config["cross_attention_dim"]
    text_config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=text_width,
        intermediate_size=2 * text_width,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=TINY_CONTEXT,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        projection_dim=text_width,
    )
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(text_config)
    unet = UNet2DConditionModel(**unet_config)
    if latent:
        vae = AutoencoderKL(**(sd21_vae_config() if sd21 else _tiny_vae_config()))
        scheduler = PNDMScheduler(  # Stable Diffusion's scheduler config
            beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000,
            set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1, prediction_type="epsilon",
        )
    else:
        vae = None
        scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="epsilon")

    unet.save_pretrained(tmp / "unet", safe_serialization=True)
    text_encoder.save_pretrained(tmp / "text_encoder", safe_serialization=True)
    tokenizer.save_pretrained(tmp / "tokenizer")
    scheduler.save_pretrained(tmp / "scheduler")
    if vae is not None:
        vae.save_pretrained(tmp / "vae", safe_serialization=True)
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": __import__("diffusers").__version__,
        "feature_extractor": [None, None],
        "image_encoder": [None, None],
        "requires_safety_checker": False,
        "safety_checker": [None, None],
        "scheduler": ["diffusers", type(scheduler).__name__],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
        "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"] if vae is not None else [None, None],
    }
    (tmp / "model_index.json").write_text(json.dumps(index, indent=2))
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def build_tiny_world_prior(folder, seed: int = 0) -> Path:
    """An embedded-style prior folder (pixel space, closed world vocabulary, lods_prior.json) with a tiny
    random UNet: the layout `embedded.save_prior_folder` writes, at test size."""
    from diffusers import UNet2DConditionModel

    from ..world.scene import VOCABULARY
    from . import embedded

    tokenizer = embedded.build_tokenizer(VOCABULARY)
    text_encoder = embedded.build_text_encoder(tokenizer, seed=seed)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**{**_tiny_unet_config(latent=False), "cross_attention_dim": embedded.TEXT_WIDTH})
    extra = {"kind": "world", "vocabulary": list(VOCABULARY), "negative_prompt": "", "size": TINY_IMAGE_SIZE}
    embedded.save_prior_folder(Path(folder), unet, text_encoder, tokenizer, embedded.build_scheduler(), extra=extra)
    return Path(folder)
