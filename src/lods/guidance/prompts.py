"""DreamFusion's view-dependent prompts ("<prompt>, front view" / side / back / overhead), encoded once."""

from __future__ import annotations

import math

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


# ---------------------------------------------------------------- Perp-Neg
# threestudio's prompt_processors/base.py (Config.perp_neg_f_*): the weight of a negative view prompt is
# -(a exp(-b r) + c), r the interpolation position between two views.
PERP_NEG_F_SB = (1.0, 0.5, -0.606)
PERP_NEG_F_FSB = (1.0, 0.5, 0.967)
PERP_NEG_F_FS = (4.0, 0.5, -2.426)
PERP_NEG_F_SF = (4.0, 0.5, -2.426)


def _decay(f: tuple[float, float, float], r: float) -> float:
    a, b, c = f
    return a * math.exp(-b * r) + c


def perp_neg_views(azimuth_deg: float, overhead: bool) -> tuple[dict[str, float], tuple[str, str], tuple[float, float]]:
    """One camera's Perp-Neg terms (threestudio's `get_text_embeddings_perp_neg`): the positive prompt as a mix
    of view embeddings {view: weight}, the two negative views and their (negative) weights."""
    if overhead:
        return {"overhead": 1.0}, ("front", "side"), (0.0, 0.0)
    az = abs((azimuth_deg + 180.0) % 360.0 - 180.0)
    if az < 90.0:  # front-side: r = 1 at the front, 0 at the side
        r = 1.0 - az / 90.0
        return {"front": r, "side": 1.0 - r}, ("front", "side"), (-_decay(PERP_NEG_F_FS, r), -_decay(PERP_NEG_F_SF, 1.0 - r))
    r = 2.0 - az / 90.0  # side-back: r = 1 at the side, 0 at the back
    return {"side": r, "back": 1.0 - r}, ("side", "front"), (-_decay(PERP_NEG_F_SB, r), -_decay(PERP_NEG_F_FSB, r))


def perpendicular_component(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The part of each sample of x perpendicular to the same sample of y."""
    dot = (x * y).flatten(1).sum(1)
    norm = (y * y).flatten(1).sum(1).clamp_min(1e-6)
    return x - (dot / norm).view(-1, *([1] * (x.dim() - 1))) * y


def perp_neg_combine(eps_pos: torch.Tensor, eps_null: torch.Tensor, eps_negs: list[torch.Tensor], weights: torch.Tensor) -> torch.Tensor:
    """Perp-Neg's effective conditional prediction ε∅ + e_pos + Σ_i w_i ⊥(e_i, e_pos), e = ε(prompt) − ε∅; so CFG
    ε∅ + s (that − ε∅) is threestudio's `uncond + s (e_pos + Σ w_i ⊥(e_i, e_pos))`."""
    e_pos = eps_pos - eps_null
    out = eps_null + e_pos
    for i, eps_neg in enumerate(eps_negs):
        out = out + weights[:, i].view(-1, *([1] * (e_pos.dim() - 1))) * perpendicular_component(eps_neg - eps_null, e_pos)
    return out


def perp_neg_embeddings(prompts: PromptEmbeddings, cameras: Cameras, batch: int, scale: float = 1.0):
    """(positive (B, L, D), [negative 1, negative 2] (B, L, D) each, weights (B, 2) × `scale`) for the cameras."""
    if not prompts.view_dependent:
        raise ValueError("Perp-Neg needs view-dependent prompting")
    labels = prompts.views(cameras, batch)
    pos, neg1, neg2, weights = [], [], [], []
    for label, azimuth in zip(labels, cameras.azimuth_deg.tolist()):
        mix, (n1, n2), w = perp_neg_views(azimuth, label == "overhead")
        pos.append(sum(k * prompts.by_view[v] for v, k in mix.items()))
        neg1.append(prompts.by_view[n1])
        neg2.append(prompts.by_view[n2])
        weights.append(w)
    w = torch.tensor(weights, dtype=torch.float32, device=prompts.plain.device) * scale
    return torch.cat(pos), [torch.cat(neg1), torch.cat(neg2)], w
