"""What every 3D backbone offers the generate loop (Gaussians and radiance fields alike)."""

from __future__ import annotations

import torch
from torch import nn

from ..render.cameras import Cameras


class Scene3D(nn.Module):
    """A differentiable 3D model.

    `render` returns a dict with at least `rgb` (B, 3, H, W) in [0, 1] composited over `background`,
    `alpha` (B, 1, H, W) and `depth` (B, 1, H, W).
    """

    def render(self, cameras: Cameras, size: int, background: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def param_groups(self) -> list[dict]:
        """Optimizer groups: dicts with `params`, `lr` and `name` (and optionally `weight_decay`, `eps`)."""
        raise NotImplementedError

    def regularizers(self, out: dict[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
        """Unweighted `loss_*` terms; the loop multiplies each by its `lambda_*` from the config."""
        return {}

    def after_step(self, step: int, out: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer) -> None:
        """Called after each optimizer step (densification and pruning live here)."""

    def query(self, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Occupancy-like density (N,) and colour (N, 3) at world points (N, 3), for mesh extraction."""
        raise NotImplementedError

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Every tensor needed to restore the scene exactly (shapes may change with densification)."""
        raise NotImplementedError

    def load_state_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        raise NotImplementedError
