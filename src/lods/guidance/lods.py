"""LODS core shared by its two variants (docs/algorithm.md, "LODS — the method").

grad = w(t) [ε(z_t; y) + ((1-s)/s) ε_ψ(z_t; ∅_learned) - ε/s]   (s = ∞: exactly w(t) [ε(z_t; y) - ε_ψ(z_t; ∅)])
loss_learned = mean((ε_ψ(z'_t'; ∅_learned, t') - ε')²) on z' = stopgrad(z), fresh t' ~ U{0..N-1} and ε'
(`learned_draws` such draws per image, averaged; 1 in the reference).
The branches of `grad` run under no_grad, so loss_distill sends nothing to the learnable part ψ.

`learned_warmup` (an option, 0 by default; not the reference): for the first N steps only loss_learned is computed
and the result gets a zero gradient, so ψ first fits the starting renders (docs/results.md, "the image, not the
branch").

`shared_draw` (an option, off by default; not the reference): loss_learned reuses the distillation draw (t, ε), so
ONE grad-enabled pass ε_ψ(z_t; ∅_learned) both trains ψ and, detached, serves as the unconditional branch; the
cost over SDS is then literally one more backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Guidance, is_infinite


def lods_grad(eps_y: torch.Tensor, eps_learned: torch.Tensor, noise: torch.Tensor, scale: float, w: torch.Tensor) -> torch.Tensor:
    if is_infinite(scale):
        return w * (eps_y - eps_learned)
    return w * (eps_y + ((1.0 - scale) / scale) * eps_learned - noise / scale)


class LODS(Guidance):
    """A variant provides the two branches; the gradient and the learnable part's loss are shared."""

    default_guidance_scale = 1000.0
    difference_gradient = True
    loss_names = ("distill", "learned")
    presets = {"fast": {"guidance_scale": 100.0}, "paper": {"guidance_scale": 1000.0}}

    def branches(self, z_t, t, cond) -> tuple[torch.Tensor, torch.Tensor]:
        """(ε(z_t; y), ε_ψ(z_t; ∅_learned)), called under no_grad."""
        raise NotImplementedError

    def conditional(self, z_t, t, cond) -> torch.Tensor:
        """ε(z_t; y) of the frozen prior, called under no_grad."""
        raise NotImplementedError

    def learned_unconditional(self, z_t, t) -> torch.Tensor:
        """ε_ψ(z_t; ∅_learned), differentiable with respect to ψ."""
        raise NotImplementedError

    def perp_neg_conditional(self, z_t, t, cameras) -> torch.Tensor:
        """With Perp-Neg: the frozen prior's effective conditional prediction (extra passes for ε∅ and the negatives)."""
        return self.eps_pair(z_t, t, cameras)[0]

    def forward_latents(self, z, cameras=None, step=0, *, t=None, noise=None, generator=None) -> dict:
        t, noise = self.draw(z, step, t, noise, generator)
        if step < self.config.learned_warmup:
            loss_learned = self.scale_learned_backward(self.learned_loss(z, generator))
            return self.finish(z, torch.zeros_like(z), t, loss_learned=loss_learned)
        cond = self.prompts.conditional(cameras, z.shape[0])
        if self.config.shared_draw:
            with torch.no_grad():
                z_t = self.prior.add_noise(z.detach(), noise, t)
                eps_y = self.perp_neg_conditional(z_t, t, cameras) if self.config.perp_neg else self.conditional(z_t, t, cond)
            eps_learned = self.learned_unconditional(z_t, t)
            loss_learned = F.mse_loss(eps_learned, noise)
            grad = lods_grad(eps_y, eps_learned.detach(), noise, self.guidance_scale, self.weight(t))
        else:
            with torch.no_grad():
                z_t = self.prior.add_noise(z.detach(), noise, t)
                eps_y, eps_learned = self.branches(z_t, t, cond)
                if self.config.perp_neg:
                    eps_y = self.perp_neg_conditional(z_t, t, cameras)
                grad = lods_grad(eps_y, eps_learned, noise, self.guidance_scale, self.weight(t))
            loss_learned = self.learned_loss(z, generator)
        loss_learned = self.scale_learned_backward(loss_learned)
        return self.finish(z, grad, t, loss_learned=loss_learned)

    def learned_loss(self, z, generator=None) -> torch.Tensor:
        """loss_learned on stopgrad(z): `learned_draws` fresh draws (t', ε') per image, averaged."""
        z_p = z.detach().repeat(self.config.learned_draws, *[1] * (z.dim() - 1))
        t_p, noise_p = self.draw_prior(z_p, generator)
        z_p = self.prior.add_noise(z_p, noise_p, t_p)
        return F.mse_loss(self.learned_unconditional(z_p, t_p), noise_p)
