"""DDIM inversion (clean image → noisy latent, deterministic) and DDIM sampling back along the same timesteps.

One DDIM move between noise levels ᾱ_a and ᾱ_b with the noise prediction ε:
    x̂0 = (z − √(1−ᾱ_a) ε) / √ᾱ_a,    z' = √ᾱ_b x̂0 + √(1−ᾱ_b) ε.
Inversion moves up (a < b) with ε predicted at the source; sampling back moves down with ε at the source too, so
inverting and then sampling back reproduces the input up to how much ε changes between neighbouring timesteps.
Timesteps may differ per sample (a (B,) tensor per stage); a sample whose source and destination coincide stays put.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch

EpsFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (z (B,...), t (B,)) → ε (B,...)


def ddim_timesteps(t_end: int, steps: int) -> list[int]:
    """`steps` + 1 increasing timesteps from 0 to `t_end` (inclusive), evenly spaced and rounded."""
    if steps < 1:
        raise ValueError(f"DDIM needs at least one step, got {steps}")
    if t_end < 0:
        raise ValueError(f"t_end must be >= 0, got {t_end}")
    return [round(i * t_end / steps) for i in range(steps + 1)]


def _abar(prior, t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    return prior.alphas_cumprod[t.to(prior.device)].view(-1, *([1] * (z.dim() - 1)))


def ddim_move(z: torch.Tensor, eps: torch.Tensor, abar_from: torch.Tensor, abar_to: torch.Tensor) -> torch.Tensor:
    """One deterministic DDIM move (either direction) from noise level ᾱ_from to ᾱ_to with the prediction ε."""
    x0 = (z - (1.0 - abar_from).sqrt() * eps) / abar_from.sqrt()
    return abar_to.sqrt() * x0 + (1.0 - abar_to).sqrt() * eps


def inversion_noise_std(abar_from: torch.Tensor, abar_to: torch.Tensor) -> torch.Tensor:
    """DDIM's posterior std between the two levels, σ = √((1−ᾱ_from)/(1−ᾱ_to) · (1 − ᾱ_to/ᾱ_from)); the η noise of
    a stochastic inversion step is η σ ε' (threestudio's `ddim_inversion_step`)."""
    return ((1.0 - abar_from) / (1.0 - abar_to) * (1.0 - abar_to / abar_from)).clamp_min(0.0).sqrt()


def guided_eps_fn(prior, cond: torch.Tensor, uncond: torch.Tensor | None = None, cfg: float = 1.0) -> EpsFn:
    """ε with classifier-free guidance, ε(∅) + cfg (ε(y) − ε(∅)), both in one batched call; `uncond` None or
    cfg = 1: the conditional prediction alone. `cond`/`uncond`: (1 or B, L, D) embeddings."""

    def eps(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        b = z.shape[0]
        c = cond.expand(b, -1, -1)
        if uncond is None or cfg == 1.0:
            return prior.predict_noise(z, t, c)
        e_y, e_n = prior.predict_noise(torch.cat([z, z]), torch.cat([t, t]), torch.cat([c, uncond.expand(b, -1, -1)])).chunk(2)
        return e_n + cfg * (e_y - e_n)

    return eps


def _randn(z: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else z.device
    return torch.randn(z.shape, generator=generator, device=device).to(z.device)


def _stage(t, b: int, device) -> torch.Tensor:
    return torch.as_tensor(t, device=device).long().reshape(-1).expand(b)


@torch.no_grad()
def ddim_invert(prior, z: torch.Tensor, timesteps: Sequence, eps_fn: EpsFn, eta: float = 0.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Move `z` (at timesteps[0]) up through `timesteps` (ints, or (B,) tensors), ε predicted at each source.
    `eta` > 0 adds η σ ε' after each move (ε' from `generator`, one draw of z's shape per move)."""
    b = z.shape[0]
    stages = [_stage(t, b, z.device) for t in timesteps]
    for t_from, t_to in zip(stages[:-1], stages[1:]):
        a_from, a_to = _abar(prior, t_from, z), _abar(prior, t_to, z)
        z_next = ddim_move(z, eps_fn(z, t_from), a_from, a_to)
        if eta > 0:
            z_next = z_next + eta * inversion_noise_std(a_from, a_to) * _randn(z, generator)
        z = torch.where((t_from == t_to).view(-1, *([1] * (z.dim() - 1))), z, z_next)
    return z


@torch.no_grad()
def ddim_sample_back(prior, z: torch.Tensor, timesteps: Sequence, eps_fn: EpsFn) -> torch.Tensor:
    """The reverse of `ddim_invert` (η = 0): move `z` (at timesteps[-1]) down to timesteps[0]."""
    b = z.shape[0]
    stages = [_stage(t, b, z.device) for t in timesteps][::-1]
    for t_from, t_to in zip(stages[:-1], stages[1:]):
        z_next = ddim_move(z, eps_fn(z, t_from), _abar(prior, t_from, z), _abar(prior, t_to, z))
        z = torch.where((t_from == t_to).view(-1, *([1] * (z.dim() - 1))), z, z_next)
    return z
