"""SDS (DreamFusion): grad = w(t) (ε_cfg - ε), ε_cfg = ε(∅) + s (ε(y) - ε(∅)); both passes in one no-grad call."""

from __future__ import annotations

import torch

from .base import Guidance


class SDS(Guidance):
    name = "sds"
    default_guidance_scale = 100.0
    presets = {"fast": {"guidance_scale": 20.0}, "paper": {"guidance_scale": 100.0}}  # fast: the embedded prior's

    def forward_latents(self, z, cameras=None, step=0, *, t=None, noise=None, generator=None) -> dict:
        t, noise = self.draw(z, step, t, noise, generator)
        with torch.no_grad():
            z_t = self.prior.add_noise(z.detach(), noise, t)
            eps_y, eps_null = self.eps_pair(z_t, t, cameras)
            grad = self.weight(t) * (self.cfg(eps_y, eps_null) - noise)
        return self.finish(z, grad, t)
