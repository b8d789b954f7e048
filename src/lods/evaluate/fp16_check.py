"""Does the learnable part's gradient survive half precision? LODS-embedding's `loss_learned` gradient with respect to
the embedding, on the same prior loaded in fp32 and in fp16, with and without the backward scale: cosines to the
fp32 gradient, and the share of exactly-zero entries (underflow)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def embedding_gradient(prior, scale: float | None, prompt: str, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, float]:
    """(d loss_learned / d embedding, flattened, fp32 on the CPU; the backward scale used)."""
    from ..guidance import GuidanceConfig, build_guidance

    g = build_guidance("lods-embedding", prior, prompt, GuidanceConfig(learned_grad_scale=scale))
    gen = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 3, prior.image_size, prior.image_size, generator=gen).to(prior.device)
    draw = torch.Generator(device=prior.device).manual_seed(seed)
    out = g(images, None, 0, generator=draw)
    out["loss_learned"].backward()
    return g.embedding.grad.detach().float().flatten().cpu(), g.learned_grad_scale()


def fp16_gradient_check(folder: str, device: str = "cpu", prompt: str = "a red cube", batch: int = 2, seed: int = 0) -> dict:
    from ..priors.prior import Prior

    ref, _ = embedding_gradient(Prior.load(folder, device=device, dtype=torch.float32), 1.0, prompt, batch, seed)
    half = Prior.load(folder, device=device, dtype=torch.float16)
    scaled, k = embedding_gradient(half, None, prompt, batch, seed)
    plain, _ = embedding_gradient(half, 1.0, prompt, batch, seed)

    def cosine(a):
        return float(F.cosine_similarity(a, ref, dim=0)) if a.norm() > 0 else 0.0

    return {
        "device": device, "batch": batch, "scale": k,
        "cosine_scaled": cosine(scaled), "cosine_unscaled": cosine(plain),
        "zero_fraction_fp32": float((ref == 0).float().mean()), "zero_fraction_scaled": float((scaled == 0).float().mean()),
        "zero_fraction_unscaled": float((plain == 0).float().mean()),
        "norm_fp32": float(ref.norm()), "norm_scaled": float(scaled.norm()), "norm_unscaled": float(plain.norm()),
    }
