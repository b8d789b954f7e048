"""SDS (DreamFusion): grad = w(t) (ε_cfg - ε), ε_cfg = ε(∅) + s (ε(y) - ε(∅)); both passes in one no-grad call."""

from __future__ import annotations

import torch

from .base import Guidance


class SDS(Guidance):
    name = "sds"
    default_guidance_scale = 100.0
    presets = {"fast": {"guidance_scale": 20.0}, "paper": {"guidance_scale": 100.0}}  # fast: the embedded prior's

    def forward_latents(self, z, cameras=None, step=0, *, t=None, noise=None, generator=None) -> dict:
        b = z.shape[0]
        t, noise = self.draw(z, step, t, noise, generator)
        embeddings = torch.cat([self.prompts.conditional(cameras, b), self.prompts.unconditional(b)])
        with torch.no_grad():
            z_t = self.prior.add_noise(z.detach(), noise, t)
            eps_y, eps_null = self.prior.predict_noise(torch.cat([z_t, z_t]), torch.cat([t, t]), embeddings).chunk(2)
            eps_cfg = eps_null + self.guidance_scale * (eps_y - eps_null)
            grad = self.weight(t) * (eps_cfg - noise)
        return self.finish(z, grad, t)
