"""Sampling a prior with classifier-free guidance (DDIM), for sample grids and the prior's own evaluation."""

from __future__ import annotations

import torch


@torch.no_grad()
def sample(prior, prompts: list[str], cfg: float = 5.0, steps: int = 50, seed: int = 0, negative_prompt: str | None = None,
           eta: float = 1.0) -> torch.Tensor:
    """One sample per prompt: images in [0, 1], (B, 3, H, W).

    DDIM with `eta` (1 = ancestral noise, 0 = deterministic). A pixel prior's x0 prediction is clipped to [-1, 1] and
    the noise is re-derived from the clipped x0; clipping x0 but stepping with the raw noise (diffusers' default)
    leaves blotchy, coloured backgrounds at high CFG.
    """
    from diffusers import DDIMScheduler

    clip = not prior.is_latent
    scheduler = DDIMScheduler.from_config(prior.scheduler.config, clip_sample=clip, set_alpha_to_one=False)
    scheduler.set_timesteps(steps)
    cond = prior.encode_text(list(prompts))
    neg = negative_prompt if negative_prompt is not None else prior.default_negative_prompt
    uncond = prior.encode_text([neg]).expand_as(cond)
    g = torch.Generator().manual_seed(seed)
    channels = prior.unet.config.in_channels
    size = prior.unet.config.sample_size
    z = torch.randn(len(prompts), channels, size, size, generator=g).to(prior.device) * scheduler.init_noise_sigma
    emb = torch.cat([uncond, cond])
    for t in scheduler.timesteps:
        eps = prior.predict_noise(torch.cat([z, z]), t.expand(2 * len(prompts)).to(prior.device), emb)
        e_u, e_c = eps.chunk(2)
        out = scheduler.step(e_u + cfg * (e_c - e_u), t, z, eta=eta, use_clipped_model_output=clip, generator=g)
        z = out.prev_sample
    return prior.decode(out.pred_original_sample).clamp(0, 1).float().cpu()  # the last x0, without t=0's noise

