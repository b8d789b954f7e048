"""The embedded prior's architecture: Stable Diffusion's classes at a size a CPU can train and run.

A pixel-space UNet2DConditionModel at 32² (or, with an autoencoder, a latent one at 16²; cross-attention at 8² and 4², or from 16² or at every level as options of
`build_unet`; the text embedding, pooled, is also
added to the timestep embedding — diffusers' `addition_embed_type="text"` — so that it reaches every ResNet block
at every resolution), a CLIPTextModel over the world's closed word vocabulary with a fixed 24-token context
(padding gives a learned null embedding room, as SD's 77 tokens do), and a DDPM scheduler. Saved in the diffusers folder layout, so `Prior.load` reads it as it
reads Stable Diffusion.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from ..errors import UserError

EMBEDDED_PRIOR_DIR = Path(__file__).resolve().parent.parent / "assets" / "prior"
EMBEDDED_LATENT_PRIOR_DIR = EMBEDDED_PRIOR_DIR.with_name("prior_latent")  # `--prior embedded-latent`
EMBEDDED_NAMES = {"embedded": EMBEDDED_PRIOR_DIR, "embedded-latent": EMBEDDED_LATENT_PRIOR_DIR}


def prior_folder(prior: str | None) -> Path:
    """The folder a `--prior` value means: None → the embedded prior, a name of `EMBEDDED_NAMES` (unless a path of
    that name exists) → that packaged prior, anything else → itself as a path."""
    if prior is None:
        return EMBEDDED_PRIOR_DIR
    path = Path(str(prior)).expanduser()
    return EMBEDDED_NAMES[str(prior)] if str(prior) in EMBEDDED_NAMES and not path.exists() else path

CONTEXT_LENGTH = 24
TEXT_WIDTH = 128
SPECIAL_TOKENS = ("<pad>", "<unk>", "<|startoftext|>", "<|endoftext|>")


def build_tokenizer(vocabulary):
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(list(SPECIAL_TOKENS) + list(vocabulary))}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", vocab["<|startoftext|>"]), ("<|endoftext|>", vocab["<|endoftext|>"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|startoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<unk>",
        pad_token="<pad>",
        model_max_length=CONTEXT_LENGTH,
    )


def build_text_encoder(tokenizer, seed: int = 0):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=TEXT_WIDTH,
        intermediate_size=4 * TEXT_WIDTH,
        num_hidden_layers=3,
        num_attention_heads=4,
        max_position_embeddings=CONTEXT_LENGTH,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        projection_dim=TEXT_WIDTH,
    )
    torch.manual_seed(seed)
    return CLIPTextModel(config)


CROSS_ATTENTION_FROM = (8, 16, 32)  # the finest level (at 32² samples) whose blocks cross-attend to the text


def build_unet(seed: int = 0, sample_size: int = 32, pooled_text: bool = True, cross_attention_from: int = 8,
               latent_channels: int = 0):
    """`pooled_text`: add the pooled text embedding to the timestep embedding, at full strength from the start (its
    last LayerNorm keeps weight 1). A zero-initialised gain would keep a warm-started UNet's function at step 0, but
    the denoising loss, which cross-attention already serves, barely grows it, and a learned null embedding can then
    move the timestep embedding only by that gain (measured: |gain| ≈ 0.001 after 100 fine-tuning steps).
    `cross_attention_from`: cross-attention at the 8² and 4² levels (8: priors v1 and v2), from 16², or at every
    level (32). Per training step 16 costs about 1.5× and 32 about 9× (scripts/bench_prior_arch.py).
    `latent_channels` > 0: a latent UNet on `sample_size`² latents of that many channels (priors/embedded_vae.py), three
    levels (64, 128, 128 channels), cross-attention from the same resolution."""
    from diffusers import UNet2DConditionModel

    if cross_attention_from not in CROSS_ATTENTION_FROM:
        raise ValueError(f"cross-attention from {cross_attention_from}²: choose one of {CROSS_ATTENTION_FROM}")
    widths = (64, 128, 128) if latent_channels else (32, 64, 128, 128)
    attends = [sample_size >> level <= cross_attention_from for level in range(len(widths))]  # pixels: 32², …, 4²
    channels = latent_channels or 3
    torch.manual_seed(seed)
    extra = {"addition_embed_type": "text", "addition_embed_type_num_heads": 4} if pooled_text else {}
    unet = UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=widths,
        layers_per_block=1,
        down_block_types=tuple("CrossAttnDownBlock2D" if a else "DownBlock2D" for a in attends),
        up_block_types=tuple("CrossAttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attends)),
        cross_attention_dim=TEXT_WIDTH,
        attention_head_dim=32,
        norm_num_groups=16,
        **extra,
    )
    return unet


def warm_start(unet, text_encoder, tokenizer, folder: Path) -> dict:
    """Load an earlier embedded prior's weights into a (possibly larger) new one: modules the old one lacks keep
    their initialisation (so the warm-started UNet is the old one plus a new, untrained path), and token embeddings
    are matched by word (a new word starts at the mean of the old vocabulary's). Returns what was new."""
    from safetensors.torch import load_file

    folder = Path(folder)
    old_unet = load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
    missing, unexpected = unet.load_state_dict({k: v.float() for k, v in old_unet.items()}, strict=False)
    if unexpected:
        raise UserError(f"{folder} is not an earlier embedded prior of this layout or a smaller one: its UNet has "
                        f"{len(unexpected)} tensors this one lacks, e.g. {unexpected[0]}")
    own = set(text_encoder.state_dict())
    old_text = {}
    for k, v in load_file(folder / "text_encoder" / "model.safetensors").items():  # either naming of transformers
        k = k if k in own else k.removeprefix("text_model.") if k.removeprefix("text_model.") in own else f"text_model.{k}"
        old_text[k] = v.float()
    key = next(k for k in own if k.endswith("token_embedding.weight"))
    old_vocab = json.loads((folder / "tokenizer" / "tokenizer.json").read_text())["model"]["vocab"]
    old_rows = old_text.pop(key)
    new_rows = text_encoder.get_input_embeddings().weight
    new_words = []
    with torch.no_grad():
        mean = old_rows[[i for w, i in old_vocab.items() if w not in SPECIAL_TOKENS]].mean(0)
        for word, i in tokenizer.get_vocab().items():
            if word in old_vocab:
                new_rows[i] = old_rows[old_vocab[word]]
            else:
                new_rows[i] = mean
                new_words.append(word)
    missing_text, unexpected_text = text_encoder.load_state_dict(old_text, strict=False)
    if unexpected_text or [k for k in missing_text if k != key]:
        raise UserError(f"{folder}: its text encoder does not match this one's shape")
    return {"new_unet_tensors": sorted(missing), "new_words": sorted(new_words)}


def build_scheduler(latent: bool = False):
    from diffusers import DDPMScheduler

    return DDPMScheduler(  # latents are not bounded: no clipping of x0 there
        num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2", prediction_type="epsilon", clip_sample=not latent
    )


def save_prior_folder(folder: Path, unet, text_encoder, tokenizer, scheduler, extra: dict | None = None, dtype=torch.float16,
                      vae=None) -> None:
    """Write a diffusers-layout folder atomically (a temp folder, then a rename); `vae` (kept in float32) makes it a
    latent prior."""
    folder = Path(folder)
    tmp = folder.with_name(folder.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    unet.to(dtype).save_pretrained(tmp / "unet", safe_serialization=True)
    text_encoder.to(dtype).save_pretrained(tmp / "text_encoder", safe_serialization=True)
    unet.to(torch.float32)
    text_encoder.to(torch.float32)
    tokenizer.save_pretrained(tmp / "tokenizer")
    scheduler.save_pretrained(tmp / "scheduler")
    if vae is not None:
        vae.save_pretrained(tmp / "vae", safe_serialization=True)
    index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": __import__("diffusers").__version__,
        "unet": ["diffusers", "UNet2DConditionModel"],
        "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "PreTrainedTokenizerFast"],
        "scheduler": ["diffusers", "DDPMScheduler"],
        "vae": ["diffusers", "AutoencoderKL"] if vae is not None else [None, None],
        "safety_checker": [None, None],
        "feature_extractor": [None, None],
    }
    (tmp / "model_index.json").write_text(json.dumps(index, indent=2))
    if extra:
        (tmp / "lods_prior.json").write_text(json.dumps(extra, indent=2))
    swap_in(tmp, folder)


def install_prior(src: Path, dst: Path = EMBEDDED_PRIOR_DIR) -> None:
    """Copy a trained prior folder over the packaged default (atomically: copy beside, then rename)."""
    src, dst = Path(src), Path(dst)
    tmp = dst.with_name(dst.name + ".installing")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(src, tmp)
    swap_in(tmp, dst)


def swap_in(tmp: Path, folder: Path) -> None:
    """Replace `folder` by the finished `tmp` folder with renames, so no reader sees a half-written one."""
    old = folder.with_name(folder.name + ".old")
    if folder.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(folder, old)
    os.replace(tmp, folder)
    if old.exists():
        shutil.rmtree(old)
