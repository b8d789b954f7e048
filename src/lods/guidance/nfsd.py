"""NFSD (noise-free score distillation, Katzir et al., ICLR 2024, arXiv 2310.17590): grad = w(t) (δ_D + s δ_C),
δ_C = ε(z_t; y) − ε(z_t; ∅), δ_D = ε(z_t; ∅) for t < 200 (of 1000), else ε(z_t; ∅) − ε(z_t; y_neg), with y_neg
the paper's negative prompt. All branches in one batched call; no noise term.
The paper's settings: s = 7.5, the switch at t = 200, the negative prompt below (the authors released no code;
docs/baselines.md). A prior with a closed vocabulary that lacks those words (the embedded world prior) falls
back to its default negative prompt, which makes δ_D = 0 for t ≥ 200 there.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import UserError
from .base import Guidance

REFERENCE_NEGATIVE = "unrealistic, blurry, low quality, out of focus, ugly, low contrast, dull, dark, low-resolution, gloomy"


@dataclass
class NFSDOptions:
    negative_prompt: str | None = None  # None: REFERENCE_NEGATIVE, or the prior's default where it lacks its words
    t_switch_percent: float = 0.2  # δ_D = ε(∅) below 0.2 N (the paper's t < 200)

    def validate(self) -> None:
        if not 0.0 <= self.t_switch_percent <= 1.0:
            raise UserError("NFSD: t_switch_percent must lie in [0, 1]")


class NFSD(Guidance):
    name = "nfsd"
    default_guidance_scale = 7.5
    Options = NFSDOptions
    presets = {"fast": {"guidance_scale": 7.5}, "paper": {"guidance_scale": 7.5}}

    def __init__(self, prior, prompt, config=None):
        super().__init__(prior, prompt, config)
        self.ood_prompt = self.options.negative_prompt
        if self.ood_prompt is None:
            self.ood_prompt = REFERENCE_NEGATIVE if self.knows(prior, REFERENCE_NEGATIVE) else prior.default_negative_prompt
        prior.check_prompt(self.ood_prompt, allow_empty=True)
        self.ood = prior.encode_text([self.ood_prompt])

    @staticmethod
    def knows(prior, text: str) -> bool:
        try:
            prior.check_prompt(text)
        except UserError:
            return False
        return True

    def forward_latents(self, z, cameras=None, step=0, *, t=None, noise=None, generator=None) -> dict:
        b = z.shape[0]
        t, noise = self.draw(z, step, t, noise, generator)
        with torch.no_grad():
            z_t = self.prior.add_noise(z.detach(), noise, t)
            eps_y, eps_n, eps_ood = self.eps_pair(z_t, t, cameras, extra=[(z_t, t, self.ood.expand(b, -1, -1))])
            low = (t < self.options.t_switch_percent * self.prior.num_train_timesteps).view(-1, 1, 1, 1)
            delta_d = torch.where(low, eps_n, eps_n - eps_ood)
            grad = self.weight(t) * (delta_d + self.guidance_scale * (eps_y - eps_n))
        return self.finish(z, grad, t)
