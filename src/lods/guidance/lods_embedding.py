"""LODS-embedding: the unconditional branch's text embedding is learned (one 1×L×D tensor for the batch),
initialised from the negative prompt's embedding; both branches share one batched no-grad UNet call.

Option `time_offset` (a deviation, docs/algorithm.md): the learned branch also learns an offset of the UNet's
timestep embedding (zero at the start), which reaches every ResNet block at every resolution. On the embedded prior
v1 the text embedding reached the UNet only through cross-attention at 8² and 4², too little to describe the
renders, and the offset helped; prior v2 adds a pooled text path to every block, and there the offset measured no
better than the embedding alone (docs/results.md, "Re-tuning the learned branches"), so every preset leaves it off.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .lods import LODS


@dataclass
class LODSEmbeddingOptions:
    time_offset: bool = False  # also learn an offset of the timestep embedding in the learned branch


class LODSEmbedding(LODS):
    name = "lods-embedding"
    lr_field = "embedding_lr"
    Options = LODSEmbeddingOptions
    # learning rate of the embedding (docs/algorithm.md: 1e-5 NeRF, 1e-4 3DGS; the fast preset's 3e-2 was tuned on the
    # embedded prior v2 in the 2D playground, docs/results.md)
    presets = {"fast": {"embedding_lr": 3e-2},
               "paper/gs": {"embedding_lr": 1e-4}, "paper/nerf": {"embedding_lr": 1e-5}}

    def __init__(self, prior, prompt, config=None):
        super().__init__(prior, prompt, config)
        self.embedding = nn.Parameter(self.prompts.negative.detach().clone().float())
        width = prior.unet.time_embedding.linear_2.out_features
        self.time_offset = nn.Parameter(torch.zeros(width, device=self.embedding.device)) if self.options.time_offset else None

    def branches(self, z_t, t, cond):
        b = z_t.shape[0]
        embeddings = torch.cat([cond, self.embedding.expand(b, -1, -1)])
        offset = None
        if self.time_offset is not None:  # the conditional half gets none
            offset = torch.cat([self.time_offset.new_zeros(b, self.time_offset.shape[0]), self.time_offset.expand(b, -1)])
        eps_y, eps_learned = self.prior.predict_noise(torch.cat([z_t, z_t]), torch.cat([t, t]), embeddings,
                                                      time_offset=offset).chunk(2)
        return eps_y, eps_learned

    def conditional(self, z_t, t, cond):
        return self.prior.predict_noise(z_t, t, cond)

    def learned_unconditional(self, z_t, t):
        return self.prior.predict_noise(z_t, t, self.embedding.expand(z_t.shape[0], -1, -1), time_offset=self.time_offset)

    def param_groups(self) -> list[dict]:
        params = [self.embedding] + ([self.time_offset] if self.time_offset is not None else [])
        return [{"params": params, "lr": self.lr, "name": "lods_embedding", "weight_decay": self.config.weight_decay}]
