"""Does a learned branch fit the renders? LODS closes the guidance gap only when its learned unconditional branch
(the null embedding or the LoRA) denoises the current renders about as well as the frozen prior denoises the
images it was trained on. Beside the ratio, `untrained_loss` is the frozen unconditional branch on the same renders:
a learned loss well below it means the branch learned the renders; near it, that it learned little of them.

Both losses are the ε-MSE over the same fixed grid of timesteps (0 … N-1, the range `loss_prior` draws from) with
the same fixed noise: the learned branch on the renders, and the frozen prior's unconditional branch on clean
images of the prompt (the world's truth renders). A ratio near 1 is a fit; `FIT_RATIO` is the line drawn.
"""

from __future__ import annotations

import torch

FIT_RATIO = 1.5  # the learned branch "fits" when its loss on the renders is at most this × the clean reference
N_TIMESTEPS = 20


@torch.no_grad()
def denoising_mse(predict, add_noise, images: torch.Tensor, num_train_timesteps: int, seed: int = 0,
                  n_timesteps: int = N_TIMESTEPS) -> float:
    """Mean ε-MSE of `predict(z_t, t)` on `images` (prior space) over a uniform grid of t with fixed noise."""
    g = torch.Generator().manual_seed(seed)
    ts = torch.linspace(0, num_train_timesteps - 1, n_timesteps).round().long().tolist()
    total = 0.0
    for t_value in ts:
        noise = torch.randn(images.shape, generator=g).to(images.device, images.dtype)
        t = torch.full((images.shape[0],), t_value, device=images.device, dtype=torch.long)
        total += float(((predict(add_noise(images, noise, t), t).float() - noise.float()) ** 2).mean())
    return total / len(ts)


@torch.no_grad()
def learned_fit(guidance, renders: torch.Tensor, clean: torch.Tensor, seed: int = 0) -> dict | None:
    """The learned branch's loss on `renders` against the frozen prior's on `clean` (both encoded prior inputs,
    (B, C, H, W)). None for a method without a learned unconditional branch."""
    learned = getattr(guidance, "learned_unconditional", None)
    if learned is None:
        return None
    prior = guidance.prior
    frozen_uncond = lambda z_t, t: prior.predict_noise(z_t, t, guidance.prompts.unconditional(z_t.shape[0]))
    loss = denoising_mse(learned, prior.add_noise, renders, prior.num_train_timesteps, seed)
    reference = denoising_mse(frozen_uncond, prior.add_noise, clean, prior.num_train_timesteps, seed)
    untrained = denoising_mse(frozen_uncond, prior.add_noise, renders, prior.num_train_timesteps, seed)
    ratio = loss / reference if reference > 0 else float("inf")
    return {"learned_loss": loss, "clean_reference_loss": reference, "untrained_loss": untrained, "fit_ratio": ratio,
            "fits": bool(ratio <= FIT_RATIO)}


def world_truth_images(prompt: str, prior, n_views: int = 8, max_images: int = 32) -> torch.Tensor:
    """Canonical renders of the prompt's completions on the evaluation ring, encoded for `prior` (the clean
    reference of a world prompt); at most `max_images`, spread evenly over the completions."""
    from ..render.cameras import evaluation_cameras
    from ..world.captions import completions
    from ..world.render import render_scene

    scenes = completions(prompt)
    cams = evaluation_cameras(n_views)
    per_scene = max(1, max_images // len(scenes))
    images = [render_scene(sc, cams, size=prior.image_size)["rgb"][:: max(1, n_views // per_scene)][:per_scene] for sc in scenes]
    images = torch.cat(images)[:max_images].to(prior.device)
    return prior.encode_images(images)
