"""One loaded prior per process, shared by the runs of a batch, and runs that leave it as they found it.

`shared_prior(path, device)` loads a prior the first time it is asked for and hands back the same object after
that (keyed by the resolved path or hub id, the device and the dtype), so a batch of prompts, or a Ray worker
that runs many tasks, reads the UNet and the text encoder once. LoRA-based methods (lods-lora, vsd) add adapters
to the shared UNet; `isolated_adapters(prior)` removes every adapter a run added, so no run sees another's.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from . import lora

_CACHE: dict[tuple, object] = {}


def _key(path_or_id, device, dtype) -> tuple:
    device = torch.device(device)
    if dtype is None:
        dtype = torch.float16 if device.type == "cuda" else torch.float32
    return (None if path_or_id is None else str(path_or_id), str(device), str(dtype))


def shared_prior(path_or_id: str | None, device="cpu", dtype: torch.dtype | None = None):
    """The process's Prior for (path, device, dtype), loaded on first use."""
    from .prior import Prior

    key = _key(path_or_id, device, dtype)
    if key not in _CACHE:
        _CACHE[key] = Prior.load(path_or_id, device=device, dtype=dtype)
    return _CACHE[key]


def clear_shared_priors() -> None:
    _CACHE.clear()


def remove_adapters(unet, names) -> None:
    """Delete LoRA adapters `names` from `unet` (the others keep their weights)."""
    names = [n for n in names if n in lora.adapter_names(unet)]
    if names:
        unet.delete_adapters(names)


@contextmanager
def isolated_adapters(prior):
    """Within the block a run may add LoRA adapters to `prior.unet`; afterwards they are gone, also on failure."""
    before = set(lora.adapter_names(prior.unet))
    try:
        yield prior
    finally:
        remove_adapters(prior.unet, [n for n in lora.adapter_names(prior.unet) if n not in before])
