"""Variance within a specified prompt: shades and light; the canonical render stays the reference."""

import random

import torch

from lods.render.cameras import orbit_cameras
from lods.world.dataset import render_world
from lods.world.render import render_scene
from lods.world.scene import parse_prompt
from lods.world.variation import CANONICAL, Variation, random_variation, shade_albedo

CAMS = orbit_cameras(torch.tensor([20.0, 20.0]), torch.tensor([0.0, 90.0]), torch.tensor([2.5, 2.5]), 40.0)


def test_canonical_variation_is_the_plain_render():
    scene, _ = parse_prompt("a red cube to the left of a blue sphere")
    plain = render_scene(scene, CAMS, size=16)["rgb"]
    explicit = render_scene(scene, CAMS, size=16, variation=Variation(((1.0, 1.0), (1.0, 1.0)), 0.0, 1.0))["rgb"]
    assert torch.equal(plain, explicit)


def test_shades_and_light_change_the_object_not_the_background_or_silhouette():
    scene, _ = parse_prompt("a green cylinder")
    a = render_scene(scene, CAMS, size=16)
    b = render_scene(scene, CAMS, size=16, variation=Variation(((0.8, 0.8),), 45.0, 1.2))
    assert torch.equal(a["alpha"], b["alpha"])
    inside = a["alpha"][:, 0] > 0.99
    outside = a["alpha"][:, 0] == 0
    diff = (a["rgb"] - b["rgb"]).abs().sum(1)
    assert diff[inside].mean() > 0.02 and diff[outside].max() == 0


def test_a_shade_keeps_its_colour_name():
    red = (0.86, 0.12, 0.10)
    for value, sat in ((0.8, 0.75), (1.2, 1.25), (0.8, 1.25), (1.2, 0.75)):
        r, g, b = shade_albedo(red, value, sat)
        assert r > 2 * g and r > 2 * b  # still clearly red
    assert shade_albedo(red, 1.0, 1.0) == red


def test_random_variation_is_seeded_and_spans_its_ranges():
    draws = [random_variation(random.Random(i), 1) for i in range(200)]
    assert draws[3] == random_variation(random.Random(3), 1)
    values = [d.shades[0][0] for d in draws]
    yaws = [d.light_yaw_deg for d in draws]
    assert min(values) < 0.85 and max(values) > 1.15 and min(yaws) < -45 and max(yaws) > 45


def test_training_renders_vary_unless_asked_not_to():
    varied = render_world(2, views_per_scene=1, seed=5, size=16)
    canonical = render_world(2, views_per_scene=1, seed=5, size=16, vary=False)
    assert varied.captions == canonical.captions
    assert not (varied.images == canonical.images).all()
    assert CANONICAL == Variation()
