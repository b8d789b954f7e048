"""Variance within a fully specified prompt: "a red cube" is a distribution of images, not one image.

Two axes, each drawn uniformly per scene (the middle of every range is the canonical render, the reference of the
ground-truth metrics):
- shade: each object's albedo gets a value gain in SHADE_VALUE and a saturation gain in SHADE_SATURATION (a
  darker or paler red is still "red"; the judge is trained on the same ranges);
- light: the key and fill lights turn together about the vertical axis by LIGHT_YAW_DEG, and their intensity
  (not the ambient term) is scaled by LIGHT_GAIN.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

SHADE_VALUE = (0.8, 1.2)
SHADE_SATURATION = (0.75, 1.25)
LIGHT_YAW_DEG = (-60.0, 60.0)
LIGHT_GAIN = (0.8, 1.2)


@dataclass(frozen=True)
class Variation:
    shades: tuple[tuple[float, float], ...] = ()  # per object: (value gain, saturation gain); () = canonical
    light_yaw_deg: float = 0.0
    light_gain: float = 1.0

    def shade(self, index: int) -> tuple[float, float]:
        return self.shades[index] if index < len(self.shades) else (1.0, 1.0)


CANONICAL = Variation()


def random_variation(rng: random.Random, n_objects: int) -> Variation:
    shades = tuple((rng.uniform(*SHADE_VALUE), rng.uniform(*SHADE_SATURATION)) for _ in range(n_objects))
    return Variation(shades, rng.uniform(*LIGHT_YAW_DEG), rng.uniform(*LIGHT_GAIN))


def shade_albedo(rgb: tuple[float, float, float], value: float, saturation: float) -> tuple[float, float, float]:
    """Scale an albedo's saturation about its grey level, then its value; clipped to [0, 1]."""
    if value == 1.0 and saturation == 1.0:
        return tuple(rgb)  # the canonical albedo, exactly
    grey = sum(rgb) / 3
    return tuple(min(1.0, max(0.0, (grey + (c - grey) * saturation) * value)) for c in rgb)


def turn_light(direction: tuple[float, float, float], yaw_deg: float) -> torch.Tensor:
    """A light direction turned about the vertical (z) axis."""
    a = torch.deg2rad(torch.tensor(yaw_deg))
    x, y, z = direction
    return torch.stack([torch.cos(a) * x - torch.sin(a) * y, torch.sin(a) * x + torch.cos(a) * y, torch.tensor(float(z))])
