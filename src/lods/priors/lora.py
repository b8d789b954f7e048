"""LoRA adapters on one shared UNet, through peft via diffusers' integration, switched by a per-call scale.

Every adapter stays active and trainable; its peft scale is 0 (the pretrained model exactly: the adapter adds
0 × its output) except inside `adapter_scale(unet, name, s)`. So one UNet in memory serves the frozen
branch (scale 0) and a learnable branch (e.g. 0.5 for LODS-LoRA), and several adapters (LODS, VSD) can share
it. Do not call `unet.set_adapter` / `disable_adapters` elsewhere: peft ties them to `requires_grad`.
"""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from pathlib import Path

import torch

LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
# Which layers an adapter adapts. "attention": the projections of every attention block (the reference LoRA;
# on the embedded prior only its 8² and 4² blocks have attention). "all": those plus both 3×3 convolutions of
# every ResNet block, which reach every resolution.
LORA_TARGET_SETS = {"attention": LORA_TARGETS, "all": LORA_TARGETS + ("conv1", "conv2")}


def adapter_names(unet) -> list[str]:
    return list(getattr(unet, "peft_config", {}) or {}) if getattr(unet, "_hf_peft_config_loaded", False) else []


def _lora_layers(unet):
    from peft.tuners.lora import LoraLayer

    return [m for m in unet.modules() if isinstance(m, LoraLayer)]


def _set_scale(unet, name: str, scale) -> None:
    """`scale` a float, or a (B,) tensor: one scale per sample of the next call (batch-first inputs)."""
    for layer in _lora_layers(unet):
        if torch.is_tensor(scale):  # broadcast over (B, tokens, C) for linear layers, (B, C, H, W) for convolutions
            conv = isinstance(layer.get_base_layer(), torch.nn.Conv2d)
            layer.set_scale(name, scale.reshape(-1, 1, 1, 1) if conv else scale.reshape(-1, 1, 1))
        else:
            layer.set_scale(name, scale)


def add_lora(unet, name: str, rank: int = 4, alpha: float | None = None, targets: str = "attention") -> str:
    """Add a rank-`rank` LoRA on the layers of `targets` (a key of LORA_TARGET_SETS); returns its (unique) name.
    As the reference LoRA layer: down-projection from N(0, std 1/rank), up-projection zero (peft's
    init_lora_weights="gaussian")."""
    from peft import LoraConfig

    if targets not in LORA_TARGET_SETS:
        raise ValueError(f"unknown LoRA targets {targets!r}; choose from {sorted(LORA_TARGET_SETS)}")
    existing = adapter_names(unet)
    unique, k = name, 1
    while unique in existing:
        unique, k = f"{name}_{k}", k + 1
    config = LoraConfig(
        r=rank, lora_alpha=alpha if alpha is not None else rank, target_modules=list(LORA_TARGET_SETS[targets]), init_lora_weights="gaussian"
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*multiple adapters.*")  # intended: adapters share one UNet
        unet.add_adapter(config, adapter_name=unique)
    unet.set_adapter(existing + [unique])  # all adapters active (and trainable); scales pick which one acts
    for layer in _lora_layers(unet):
        for store in (layer.lora_A, layer.lora_B):
            if unique in store:
                store[unique].to(torch.float32)  # fp32 weights for the optimiser even on an fp16 UNet
    for other in existing + [unique]:
        _set_scale(unet, other, 0.0)
    return unique


@contextmanager
def adapter_scale(unet, name: str, scale):
    """Within the block, adapter `name` acts at `scale` (all others at 0); afterwards it is silenced again.
    A (B,) tensor `scale` gives each sample of a batched call its own scale (e.g. 0 and 0.5 in one call)."""
    if name not in adapter_names(unet):
        raise KeyError(f"no LoRA adapter {name!r}; adapters: {adapter_names(unet)}")
    _set_scale(unet, name, scale)
    try:
        yield
    finally:
        _set_scale(unet, name, 0.0)


def lora_parameters(unet, name: str) -> list[torch.nn.Parameter]:
    """The adapter's trainable tensors (for an optimizer group)."""
    params = []
    for layer in _lora_layers(unet):
        for store in (layer.lora_A, layer.lora_B):
            if name in store:
                params.extend(store[name].parameters())
    return params


def lora_state(unet, name: str) -> dict[str, torch.Tensor]:
    """The adapter's weights keyed without the adapter name (peft's layout)."""
    from peft import get_peft_model_state_dict

    return {k: v.detach().clone() for k, v in get_peft_model_state_dict(unet, adapter_name=name).items()}


def load_lora_state(unet, name: str, state: dict[str, torch.Tensor]) -> None:
    """Copy weights from `lora_state` output into adapter `name` (which must already exist with the same shape)."""
    from peft import set_peft_model_state_dict

    expected = set(lora_state(unet, name))
    if set(state) != expected:
        missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
        raise ValueError(f"LoRA weights do not match adapter {name!r}: missing {missing[:3]}, unexpected {extra[:3]}")
    set_peft_model_state_dict(unet, state, adapter_name=name)


def save_lora(unet, name: str, path) -> None:
    from safetensors.torch import save_file

    from ..utils.io import atomic_save

    tensors = {k: v.contiguous().cpu() for k, v in lora_state(unet, name).items()}
    atomic_save(Path(path), lambda tmp: save_file(tensors, str(tmp)))


def load_lora(unet, name: str, path) -> None:
    from safetensors.torch import load_file

    load_lora_state(unet, name, load_file(str(path)))
