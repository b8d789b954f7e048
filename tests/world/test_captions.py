"""Under-specified captions: dropout rates on a fixed rng, parse_spec, completion sets, context never dropped."""

import random

import pytest

from lods.world.captions import (
    DROP_COLOR,
    DROP_PAIR,
    DROP_SHAPE,
    ObjectSpec,
    PromptSpec,
    completions,
    drop_attributes,
    parse_spec,
    spec_of,
)
from lods.world.scene import PromptError, Scene, WorldObject, parse_prompt
from lods.world.shapes import COLORS, SHAPES

N = 4000


def test_single_object_dropout_rates_on_a_fixed_rng():
    rng = random.Random(0)
    scene = Scene((WorldObject("cube", "red"),))
    specs = [drop_attributes(scene, rng) for _ in range(N)]
    no_color = sum(s.objects[0].color is None for s in specs) / N
    no_shape = sum(s.objects[0].shape is None for s in specs) / N
    assert no_color == pytest.approx(DROP_COLOR, abs=0.02)
    assert no_shape == pytest.approx(DROP_SHAPE, abs=0.02)
    assert not any(s.objects[0].color is None and s.objects[0].shape is None for s in specs)
    again = random.Random(0)
    assert specs[:50] == [drop_attributes(scene, again) for _ in range(50)]  # deterministic in the rng


def test_pair_dropout_touches_one_object_and_keeps_the_relation():
    rng = random.Random(1)
    scene = Scene((WorldObject("cube", "red"), WorldObject("sphere", "blue")), relation="to the left of")
    specs = [drop_attributes(scene, rng) for _ in range(N)]
    dropped = [s for s in specs if not s.specified]
    assert len(dropped) / N == pytest.approx(DROP_PAIR, abs=0.02)
    for s in dropped:
        open_attrs = sum(a is None for o in s.objects for a in (o.shape, o.color))
        assert open_attrs == 1
    assert all(s.relation == "to the left of" for s in specs)
    firsts = sum(s.objects[0] != ObjectSpec("cube", "red") for s in dropped)
    assert 0.35 < firsts / len(dropped) < 0.65  # either object, evenly


def test_context_words_are_never_dropped():
    rng = random.Random(2)
    on_mat = Scene((WorldObject("torus", "green"),), context="mat")
    alone = Scene((WorldObject("torus", "green"),))
    for _ in range(500):
        assert drop_attributes(on_mat, rng).context == "mat"
        s = drop_attributes(alone, rng)
        assert s.context is None and "mat" not in s.caption()


def test_parse_spec_reads_open_attributes_and_views():
    spec, view = parse_spec("a cube, front view")
    assert spec == PromptSpec((ObjectSpec("cube", None),)) and view == "front"
    assert not spec.specified and spec.category == "single"
    spec, _ = parse_spec("a red object on a pedestal")
    assert spec.objects == (ObjectSpec(None, "red"),) and spec.context == "pedestal"
    spec, _ = parse_spec("a cube to the left of a blue sphere")
    assert spec.objects == (ObjectSpec("cube", None), ObjectSpec("sphere", "blue")) and spec.category == "multi"
    assert spec.caption() == "a cube to the left of a blue sphere"
    full, _ = parse_spec("a red cube on a mat")
    assert full.specified and full == spec_of(parse_prompt("a red cube on a mat")[0])
    for bad in ["a DSLR photo of a hamburger", "a red", "an object on a table"]:
        with pytest.raises(PromptError):
            parse_spec(bad)


def test_completions_of_known_cases():
    cubes = completions("a cube")
    assert len(cubes) == 8 and {s.objects[0].color for s in cubes} == set(COLORS)
    assert all(s.objects[0].shape == "cube" and s.context is None for s in cubes)
    reds = completions("a red object")
    assert sorted(s.objects[0].shape for s in reds) == sorted(SHAPES)
    assert completions("a red cube") == [parse_prompt("a red cube")[0]]
    assert [s.caption() for s in completions("a cone on a pedestal")] == [f"a {c} cone on a pedestal" for c in COLORS]
    pair = completions("a red cube to the left of a sphere")
    assert len(pair) == 8 and all(s.objects[0] == WorldObject("cube", "red") for s in pair)
    same = completions("a red cube on top of a cube")
    assert len(same) == 7  # a pair of identical objects is not a scene
