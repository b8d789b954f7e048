"""DreamFusion's view-dependent prompts ("<prompt>, front view" / side / back / overhead), encoded once."""

from __future__ import annotations

import torch

from ..render.cameras import Cameras, view_label

VIEWS = ("front", "side", "back", "overhead")


def view_prompt(prompt: str, view: str) -> str:
    return f"{prompt}, {view} view"


class PromptEmbeddings:
    """The prompt's embeddings (plain and per view) and the negative prompt's, computed at construction."""

    def __init__(self, prior, prompt: str, negative_prompt: str = "", view_dependent: bool = True):
        self.prompt = prompt
        self.negative_prompt = negative_prompt
        self.view_dependent = view_dependent
        views = VIEWS if view_dependent else ()
        texts = [prompt] + [view_prompt(prompt, v) for v in views]
        for text in texts[1:]:
            prior.check_prompt(text)  # a closed vocabulary must know the view words
        embeddings = prior.encode_text(texts + [negative_prompt])
        self.plain = embeddings[:1]
        self.by_view = {v: embeddings[1 + i : 2 + i] for i, v in enumerate(views)}
        self.negative = embeddings[-1:]

    def views(self, cameras: Cameras | None, batch: int) -> list[str | None]:
        """The view label of each camera (None: the plain prompt)."""
        if cameras is None or not self.view_dependent:
            return [None] * batch
        if len(cameras) != batch:
            raise ValueError(f"{len(cameras)} cameras for {batch} images")
        return [view_label(e, a) for e, a in zip(cameras.elevation_deg.tolist(), cameras.azimuth_deg.tolist())]

    def conditional(self, cameras: Cameras | None, batch: int) -> torch.Tensor:
        """(B, L, D): the prompt, with each camera's view suffix when view-dependent prompting is on."""
        labels = self.views(cameras, batch)
        if all(v is None for v in labels):
            return self.plain.expand(batch, -1, -1)
        return torch.cat([self.by_view[v] for v in labels], dim=0)

    def unconditional(self, batch: int) -> torch.Tensor:
        """(B, L, D): the negative prompt ("" by default)."""
        return self.negative.expand(batch, -1, -1)
