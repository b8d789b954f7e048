"""LODS-LoRA: a rank-4 LoRA on the UNet's attention projections is the learned unconditional branch.

The conditional branch runs at adapter scale 0 (the pretrained model); the unconditional branch and loss_prior
at `lora_scale_uncond` (0.5), conditioned on the negative prompt, with no camera input. One UNet in memory.
"""

from __future__ import annotations

from torch import nn

from ..priors import lora
from .lods import LODS


class LODSLoRA(LODS):
    name = "lods-lora"
    lr_field = "lora_lr"

    def __init__(self, prior, prompt, config=None):
        super().__init__(prior, prompt, config)
        self.adapter = lora.add_lora(prior.unet, "lods", rank=self.config.lora_rank)
        self.lora_params = nn.ParameterList(lora.lora_parameters(prior.unet, self.adapter))  # shared, for state_dict

    def branches(self, z_t, t, cond):
        eps_y = self.prior.predict_noise(z_t, t, cond)  # adapter scale 0
        return eps_y, self.learned_unconditional(z_t, t)

    def learned_unconditional(self, z_t, t):
        uncond = self.prompts.unconditional(z_t.shape[0])
        return self.prior.predict_noise(z_t, t, uncond, lora_scale=self.config.lora_scale_uncond, adapter=self.adapter)

    def param_groups(self) -> list[dict]:
        return [{"params": list(self.lora_params), "lr": self.lr, "name": "lods_lora", "weight_decay": self.config.weight_decay}]
