"""CSD (classifier score distillation): grad = w(t) (ε(y) - ε(∅)), the classifier part of the score alone."""

from __future__ import annotations

import torch

from .base import Guidance


class CSD(Guidance):
    name = "csd"
    default_guidance_scale = None  # the classifier score has no CFG scale
    difference_gradient = True

    def forward_latents(self, z, cameras=None, step=0, *, t=None, noise=None, generator=None) -> dict:
        t, noise = self.draw(z, step, t, noise, generator)
        with torch.no_grad():
            z_t = self.prior.add_noise(z.detach(), noise, t)
            eps_y, eps_null = self.eps_pair(z_t, t, cameras)
            grad = self.weight(t) * (eps_y - eps_null)
        return self.finish(z, grad, t)
