"""VSD (ProlificDreamer): grad = w(t) (ε_cfg(z_t; y, s) - ε_lora(z_t; y, camera)).

The LoRA branch is a rank-4 LoRA at scale 1 on the shared UNet plus a camera embedding: the flattened 4×4
camera-to-world matrix through a small MLP, added to the UNet's timestep embedding by a forward hook that
exists only during the LoRA call. Its last layer starts at zero, so the branch starts as the pretrained model.
It sees the view-independent prompt (as the reference) and is trained on detached renders with the denoising
loss (`loss_learned`), the camera dropped for the whole batch with p=0.1.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from ..priors import lora
from .base import Guidance


class VSD(Guidance):
    name = "vsd"
    default_guidance_scale = 7.5
    lr_field = "vsd_lr"
    adds_adapter = True
    loss_names = ("distill", "learned")
    presets = {"fast": {"guidance_scale": 7.5}, "paper": {"guidance_scale": 7.5, "vsd_lr": 1e-4}}

    def __init__(self, prior, prompt, config=None):
        super().__init__(prior, prompt, config)
        self.adapter = lora.add_lora(prior.unet, "vsd", rank=self.config.lora_rank,
                                     targets=self.config.lora_targets)
        self.lora_params = nn.ParameterList(lora.lora_parameters(prior.unet, self.adapter))  # shared, for state_dict
        width = prior.unet.time_embedding.linear_2.out_features
        self.camera_mlp = nn.Sequential(nn.Linear(16, width), nn.SiLU(), nn.Linear(width, width)).to(prior.device)
        nn.init.zeros_(self.camera_mlp[2].weight)
        nn.init.zeros_(self.camera_mlp[2].bias)

    @contextmanager
    def camera_conditioning(self, cameras16: torch.Tensor):
        emb = self.camera_mlp(cameras16)

        def add_camera(module, args, output):
            return output + emb.to(output.dtype)

        handle = self.prior.unet.time_embedding.register_forward_hook(add_camera)
        try:
            yield
        finally:
            handle.remove()

    def lora_eps(self, z_t, t, cond, cameras16):
        with self.camera_conditioning(cameras16):
            return self.prior.predict_noise(z_t, t, cond, lora_scale=1.0, adapter=self.adapter)

    def forward_latents(self, z, cameras=None, step=0, *, t=None, noise=None, generator=None) -> dict:
        b = z.shape[0]
        t, noise = self.draw(z, step, t, noise, generator)
        plain = self.prompts.plain.expand(b, -1, -1)  # the LoRA branch: the view-independent prompt
        cams = cameras.c2w.reshape(b, 16).to(z.device, torch.float32) if cameras is not None else z.new_zeros(b, 16)
        with torch.no_grad():
            z_t = self.prior.add_noise(z.detach(), noise, t)
            eps_y, eps_null = self.eps_pair(z_t, t, cameras)
            grad = self.weight(t) * (self.cfg(eps_y, eps_null) - self.lora_eps(z_t, t, plain, cams))
        t_p, noise_p = self.draw_prior(z, generator)
        keep = (draw_uniform(1, generator, z.device) >= self.config.camera_dropout).float()  # one draw per batch
        z_p = self.prior.add_noise(z.detach(), noise_p, t_p)
        loss_learned = F.mse_loss(self.lora_eps(z_p, t_p, plain, cams * keep), noise_p)
        loss_learned = self.scale_learned_backward(loss_learned)
        return self.finish(z, grad, t, loss_learned=loss_learned)

    def param_groups(self) -> list[dict]:
        params = list(self.lora_params) + list(self.camera_mlp.parameters())
        return [{"params": params, "lr": self.lr, "name": "vsd_lora", "weight_decay": self.config.weight_decay}]


def draw_uniform(batch: int, generator, device) -> torch.Tensor:
    gen_device = generator.device if generator is not None else device
    return torch.rand(batch, generator=generator, device=gen_device).to(device)
