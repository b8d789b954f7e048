"""ISM (LucidDreamer, interval score matching): grad = w(t) (ε_cfg(z_t, t; y) − ε(z_s, s; ∅)), s = max(t − δ, 0).

z_s is a DDIM inversion of z with the null prompt: z noised with ε at the level `start` = max(s − xs_delta_t ·
xs_inv_steps, 0) (0 in practice, as the reference's `add_noise` at timesteps[starting_ind]), then up in steps of
`xs_delta_t` (at most `xs_inv_steps`) to s; one more inversion step s → t gives z_t. The target ε(z_s, s; ∅) is
the prediction that last step used. The interval δ anneals from `delta_t_start` to `delta_t` over
`delta_t_anneal_steps` (δ = delta_t + ⌈r (delta_t_start − delta_t)⌉, r = 1 − min(step / steps, 1)).
Reference: EnVision-Research/LucidDreamer, guidance/sd_utils.py (`train_step_perpneg`, `add_noise_with_cfg`),
settings from arguments/__init__.py (GuidanceParams) and configs/*.yaml. Deviation: the weight is the house
w(t) = 1 − ᾱ_t (the reference: √((1 − ᾱ_t) / ᾱ_t)), see docs/baselines.md.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import UserError
from ..priors.inversion import ddim_invert, ddim_move
from .base import Guidance


@dataclass
class ISMOptions:
    delta_t: int = 50  # configs/*.yaml `delta_t: 50` (arguments/__init__.py's default: 80)
    delta_t_start: int = 100  # `delta_t_start: 100`, with `annealing_intervals: true`
    delta_t_anneal_steps: int = 1500  # OptimizationParams.warmup_iter (1500 of `iterations: 5000`)
    xs_delta_t: int = 200  # `xs_delta_t: 200`
    xs_inv_steps: int = 5  # `xs_inv_steps: 5`; `xs_eta: 0.0` and `denoise_guidance_scale: 1.0` (the null prompt
    # alone inverts) are the only settings implemented

    def validate(self) -> None:
        if self.delta_t < 1 or self.delta_t_start < 1 or self.xs_delta_t < 1 or self.xs_inv_steps < 1 or self.delta_t_anneal_steps < 0:
            raise UserError("ISM: delta_t, delta_t_start, xs_delta_t, xs_inv_steps must be >= 1, delta_t_anneal_steps >= 0")


class ISM(Guidance):
    name = "ism"
    default_guidance_scale = 7.5  # GuidanceParams.guidance_scale
    Options = ISMOptions
    # t ~ U[0.02, max], max from 0.98 down to 0.5 over the warm-up (t_range [0.02, 0.5], max_t_range 0.98); the
    # warm-up is 1500 / 5000 = 30% of the run, scaled to each preset's steps
    presets = {
        "fast/gs": {"guidance_scale": 7.5, "max_step_percent_annealed": 0.5, "anneal_end_step": 120,
                    "method_options": {"delta_t_anneal_steps": 120}},
        "fast/nerf": {"guidance_scale": 7.5, "max_step_percent_annealed": 0.5, "anneal_end_step": 90,
                      "method_options": {"delta_t_anneal_steps": 90}},
        "paper/gs": {"guidance_scale": 7.5, "max_step_percent_annealed": 0.5, "anneal_start_step": 0,
                     "anneal_end_step": 750, "method_options": {"delta_t_anneal_steps": 750}},
        "paper/nerf": {"guidance_scale": 7.5, "max_step_percent_annealed": 0.5, "anneal_start_step": 0,
                       "anneal_end_step": 7500, "method_options": {"delta_t_anneal_steps": 7500}},
    }

    def interval(self, step: int) -> int:
        o = self.options
        rate = 1.0 - min(step / o.delta_t_anneal_steps, 1.0) if o.delta_t_anneal_steps > 0 else 0.0
        return int(o.delta_t + math.ceil(rate * (o.delta_t_start - o.delta_t)))

    def forward_latents(self, z, cameras=None, step=0, *, t=None, noise=None, generator=None) -> dict:
        o = self.options
        b = z.shape[0]
        t, noise = self.draw(z, step, t, noise, generator)
        s = (t - self.interval(step)).clamp_min(0)
        start = (s - o.xs_delta_t * o.xs_inv_steps).clamp_min(0)
        n = math.ceil(int((s - start).max()) / o.xs_delta_t)
        null = self.prompts.unconditional(b)

        def eps_null(z_in, t_in):
            return self.prior.predict_noise(z_in, t_in, null)

        abar = self.prior.alphas_cumprod
        with torch.no_grad():
            z_start = self.prior.add_noise(z.detach(), noise, start)
            stages = [torch.minimum(start + k * o.xs_delta_t, s) for k in range(n + 1)]
            z_s = ddim_invert(self.prior, z_start, stages, eps_null)
            target = eps_null(z_s, s)  # ε(z_s, s; ∅): drives the step s → t and is the target
            z_t = ddim_move(z_s, target, abar[s].view(-1, 1, 1, 1), abar[t].view(-1, 1, 1, 1))
            eps_y, eps_n = self.eps_pair(z_t, t, cameras)
            grad = self.weight(t) * (self.cfg(eps_y, eps_n) - target)
        return self.finish(z, grad, t)
