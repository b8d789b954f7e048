"""LODS-embedding: the unconditional branch's text embedding is learned (one 1×L×D tensor for the batch),
initialised from the negative prompt's embedding; both branches share one batched no-grad UNet call."""

from __future__ import annotations

import torch
from torch import nn

from .lods import LODS


class LODSEmbedding(LODS):
    name = "lods-embedding"
    lr_field = "embedding_lr"
    # learning rate of the embedding (docs/algorithm.md: 1e-5 NeRF, 1e-4 3DGS; the fast preset's 1e-3 is the CPU setting)
    presets = {"fast": {"embedding_lr": 1e-3}, "paper/gs": {"embedding_lr": 1e-4}, "paper/nerf": {"embedding_lr": 1e-5}}

    def __init__(self, prior, prompt, config=None):
        super().__init__(prior, prompt, config)
        self.embedding = nn.Parameter(self.prompts.negative.detach().clone().float())

    def branches(self, z_t, t, cond):
        b = z_t.shape[0]
        embeddings = torch.cat([cond, self.embedding.expand(b, -1, -1)])
        eps_y, eps_learned = self.prior.predict_noise(torch.cat([z_t, z_t]), torch.cat([t, t]), embeddings).chunk(2)
        return eps_y, eps_learned

    def conditional(self, z_t, t, cond):
        return self.prior.predict_noise(z_t, t, cond)

    def learned_unconditional(self, z_t, t):
        return self.prior.predict_noise(z_t, t, self.embedding.expand(z_t.shape[0], -1, -1))

    def param_groups(self) -> list[dict]:
        return [{"params": [self.embedding], "lr": self.lr, "name": "lods_embedding", "weight_decay": self.config.weight_decay}]
