"""The world: captions read back into scenes, and the ground-truth renderer's geometry."""

import math
import random

import pytest
import torch

from lods.render.cameras import orbit_cameras, view_label
from lods.world.dataset import render_world
from lods.world.render import render_scene
from lods.world.scene import PromptError, Scene, WorldObject, parse_prompt, random_scene, unknown_words


def test_captions_round_trip():
    rng = random.Random(0)
    for _ in range(200):
        scene = random_scene(rng)
        for view in (None, "front", "overhead"):
            assert parse_prompt(scene.caption(view)) == (scene, view)


def test_bad_captions():
    assert unknown_words("a red dragon on a table") == ["dragon", "table"]
    with pytest.raises(PromptError):
        parse_prompt("red a cube")


def test_view_labels():
    assert view_label(10, 0) == "front" and view_label(10, 180) == "back"
    assert view_label(10, 90) == "side" and view_label(75, 0) == "overhead"


def test_sphere_silhouette_and_depth():
    scene = Scene((WorldObject("sphere", "red"),))
    out = render_scene(scene, orbit_cameras(0.0, 0.0, 2.5, 40.0), size=64, supersample=2)
    # a sphere of radius 0.5 at distance 2.5 subtends asin(0.5/2.5); its image is a disc of that angular radius
    focal = 32 / math.tan(math.radians(20))
    radius_px = focal * math.tan(math.asin(0.5 / 2.5))
    assert out["alpha"].sum().item() == pytest.approx(math.pi * radius_px**2, rel=0.03)
    assert out["depth"][0, 0, 32, 32].item() == pytest.approx(2.0, abs=0.02)  # the nearest point of the sphere
    assert torch.all(out["rgb"][0, :, 0, 0] == 1.0)  # white background
    red = out["rgb"][0, :, 32, 32]
    assert red[0] > 2 * red[1] and red[0] > 2 * red[2]


def test_left_of_is_left_in_the_front_view():
    scene, _ = parse_prompt("a red cube to the left of a blue sphere")
    rgb = render_scene(scene, orbit_cameras(10.0, 0.0, 2.5, 40.0), size=32)["rgb"][0]
    xs = torch.arange(32.0).expand(32, 32)
    red = (rgb[0] > 0.5) & (rgb[2] < 0.3)
    blue = (rgb[2] > 0.5) & (rgb[0] < 0.3)
    assert xs[red].mean() < 16 < xs[blue].mean()


def test_dataset_is_deterministic_in_its_seed():
    a = render_world(3, views_per_scene=2, seed=7)
    b = render_world(3, views_per_scene=2, seed=7)
    c = render_world(3, views_per_scene=2, seed=8)
    assert (a.images == b.images).all() and a.captions == b.captions
    assert not (a.images == c.images).all()
    assert a.images.shape == (6, 3, 32, 32)
