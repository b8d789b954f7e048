"""LODS-LoRA: a rank-4 LoRA on the UNet (attention projections, or all layers) is the learned unconditional branch.

The conditional branch runs at adapter scale 0 (the pretrained model); the unconditional branch and loss_learned
at `lora_scale_uncond` (0.5), conditioned on the negative prompt, with no camera input. One UNet in memory.
"""

from __future__ import annotations

import torch
from torch import nn

from ..priors import lora
from .lods import LODS


class LODSLoRA(LODS):
    name = "lods-lora"
    lr_field = "lora_lr"
    adds_adapter = True
    # docs/algorithm.md: 5e-7 in 3D; the fast preset's 1e-3 was tuned on the embedded prior v2 (docs/results.md)
    presets = {"fast": {"lora_lr": 1e-3}, "paper": {"lora_lr": 5e-7}}

    def __init__(self, prior, prompt, config=None):
        super().__init__(prior, prompt, config)
        self.adapter = lora.add_lora(prior.unet, "lods", rank=self.config.lora_rank,
                                     targets=self.config.lora_targets)
        self.lora_params = nn.ParameterList(lora.lora_parameters(prior.unet, self.adapter))  # shared, for state_dict

    def branches(self, z_t, t, cond):
        """Both branches in one batched call: the first half at adapter scale 0, the second at the learned scale."""
        b = z_t.shape[0]
        scales = torch.cat([z_t.new_zeros(b), z_t.new_full((b,), self.config.lora_scale_uncond)])
        embeddings = torch.cat([cond, self.prompts.unconditional(b)])
        out = self.prior.predict_noise(torch.cat([z_t, z_t]), torch.cat([t, t]), embeddings, lora_scale=scales,
                                       adapter=self.adapter)
        return out.chunk(2)

    def conditional(self, z_t, t, cond):
        return self.prior.predict_noise(z_t, t, cond)  # adapter scale 0

    def learned_unconditional(self, z_t, t):
        uncond = self.prompts.unconditional(z_t.shape[0])
        return self.prior.predict_noise(z_t, t, uncond, lora_scale=self.config.lora_scale_uncond, adapter=self.adapter)

    def param_groups(self) -> list[dict]:
        return [{"params": list(self.lora_params), "lr": self.lr, "name": "lods_lora", "weight_decay": self.config.weight_decay}]
