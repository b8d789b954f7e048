"""Under-specified captions: attributes dropped from a scene's caption, and the completions of such a prompt.

The world captions some scenes with an attribute left out, so that a prompt can have many right answers:
- one object (alone or with surroundings): the colour is dropped with probability 0.15 ("a cube"), the shape
  with probability 0.10 ("a red object", with the word "object");
- two objects: with probability 0.20 one of them (either, evenly) loses its colour (60%) or its shape (40%)
  ("a cube to the left of a blue sphere").
Context words and relations are never dropped: a prompt without surroundings still means "no surroundings".
A prompt's completions are the fully specified scenes it allows ("a cube" → the 8 cubes); a fully specified
prompt has one.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass

from .scene import (CONTEXTS, RELATIONS, VIEWS, PromptError, Scene, WorldObject, category_of, compose_caption,
                    normalize_prompt)
from .shapes import COLORS, SHAPES

OBJECT_WORD = "object"
DROP_COLOR = 0.15
DROP_SHAPE = 0.10
DROP_PAIR = 0.20
DROP_PAIR_COLOR_SHARE = 0.6


@dataclass(frozen=True)
class ObjectSpec:
    """An object as a prompt names it: `None` where the prompt leaves the attribute open."""

    shape: str | None
    color: str | None

    def phrase(self) -> str:
        words = ["a"] + ([self.color] if self.color else []) + [self.shape or OBJECT_WORD]
        return " ".join(words)

    def completions(self) -> list[WorldObject]:
        shapes = [self.shape] if self.shape else list(SHAPES)
        colors = [self.color] if self.color else list(COLORS)
        return [WorldObject(s, c) for s in shapes for c in colors]


@dataclass(frozen=True)
class PromptSpec:
    """What a world prompt fixes: objects (possibly with open attributes), context and relation."""

    objects: tuple[ObjectSpec, ...]
    context: str | None = None
    relation: str | None = None

    @property
    def specified(self) -> bool:
        return all(o.shape and o.color for o in self.objects)

    @property
    def category(self) -> str:
        return category_of(len(self.objects), self.context)

    def caption(self, view: str | None = None) -> str:
        return compose_caption([o.phrase() for o in self.objects], self.context, self.relation, view)

    def completions(self) -> list[Scene]:
        """Every fully specified scene the prompt allows (a pair of identical objects is not a scene)."""
        scenes = []
        for objs in itertools.product(*(o.completions() for o in self.objects)):
            if len(objs) == 2 and objs[0] == objs[1]:
                continue
            scenes.append(Scene(tuple(objs), context=self.context, relation=self.relation))
        return scenes


def spec_of(scene: Scene) -> PromptSpec:
    return PromptSpec(tuple(ObjectSpec(o.shape, o.color) for o in scene.objects), scene.context, scene.relation)


def drop_attributes(scene: Scene, rng: random.Random) -> PromptSpec:
    """The scene's caption with attributes dropped at the documented rates (deterministic in `rng`)."""
    spec = list(spec_of(scene).objects)
    if len(spec) == 1:
        u = rng.random()
        if u < DROP_COLOR:
            spec[0] = ObjectSpec(spec[0].shape, None)
        elif u < DROP_COLOR + DROP_SHAPE:
            spec[0] = ObjectSpec(None, spec[0].color)
    elif rng.random() < DROP_PAIR:
        i = rng.randrange(2)
        o = spec[i]
        spec[i] = ObjectSpec(o.shape, None) if rng.random() < DROP_PAIR_COLOR_SHARE else ObjectSpec(None, o.color)
    return PromptSpec(tuple(spec), scene.context, scene.relation)


_OBJ = rf"an? (?:({'|'.join(COLORS)}) )?({'|'.join(SHAPES)}|{OBJECT_WORD})"
_PATTERN = re.compile(
    rf"^{_OBJ}(?: on an? ({'|'.join(CONTEXTS)})| ({'|'.join(RELATIONS)}) {_OBJ})?(?:\s*,\s*({'|'.join(VIEWS)}) view)?$"
)


def parse_spec(prompt: str) -> tuple[PromptSpec, str | None]:
    """Read a world prompt, specified or not, into what it fixes (and its view suffix, if any)."""
    m = _PATTERN.match(normalize_prompt(prompt))
    if not m:
        raise PromptError(f"not a caption of the world: {prompt!r}")
    c1, s1, ctx, rel, c2, s2, view = m.groups()

    def obj(shape, color):
        return ObjectSpec(None if shape == OBJECT_WORD else shape, color)

    objs = (obj(s1, c1),) + ((obj(s2, c2),) if rel else ())
    return PromptSpec(objs, ctx, rel), view


def completions(prompt: str) -> list[Scene]:
    """The fully specified scenes a world prompt allows: one for a specified prompt, 8 for "a cube"."""
    spec, _ = parse_spec(prompt)
    return spec.completions()
