"""Scenes of the procedural world, their captions, and the closed vocabulary of the embedded prior.

Three categories mirror T3Bench: a single object ("a red cube"), an object with surroundings
("a red cube on a checkered floor"), and two objects in a spatial relation
("a red cube to the left of a blue sphere"). "Left" is as seen from the front view (azimuth 0).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from .shapes import BOTTOM, COLORS, CONTEXTS, SHAPES

RELATIONS = ("to the left of", "to the right of", "on top of")
VIEWS = ("front", "side", "back", "overhead")
CATEGORIES = ("single", "surroundings", "multi")

TOP = {"sphere": 0.5, "cube": 0.42, "cone": 0.5, "cylinder": 0.45, "torus": 0.17, "pyramid": 0.5}
PAIR_SCALE = 0.55
PAIR_OFFSET = 0.42

VOCABULARY = tuple(
    sorted(
        {"a", ","}
        | set(COLORS)
        | set(SHAPES)
        | {w for c in CONTEXTS for w in c.split()}
        | {w for r in RELATIONS for w in r.split()}
        | set(VIEWS)
        | {"view", "object"}  # "object": a shape left open ("a red object", world/captions.py)
    )
)


class PromptError(ValueError):
    """A prompt the world (or the embedded prior) cannot read."""


def category_of(n_objects: int, context: str | None) -> str:
    if n_objects == 2:
        return "multi"
    return "surroundings" if context else "single"


def compose_caption(phrases: list[str], context: str | None, relation: str | None, view: str | None = None) -> str:
    """A world caption from its object phrases ("a red cube"), context, relation and view suffix."""
    text = phrases[0]
    if context:
        text += f" on a {context}"
    if relation:
        text += f" {relation} {phrases[1]}"
    return text + (f", {view} view" if view else "")


@dataclass(frozen=True)
class WorldObject:
    shape: str
    color: str

    def phrase(self) -> str:
        return f"a {self.color} {self.shape}"


@dataclass(frozen=True)
class Primitive:
    """One solid of a scene: an SDF at a position and uniform scale, with an albedo (or a checker)."""

    kind: str  # a shape name, or "box" for context slabs
    center: tuple[float, float, float]
    scale: float
    albedo: tuple[float, float, float]
    half: tuple[float, float, float] | None = None  # box half-extents (context slabs)
    radius: float | None = None  # cylinder radius (pedestal)
    checker: bool = False


@dataclass(frozen=True)
class Scene:
    objects: tuple[WorldObject, ...]
    context: str | None = None
    relation: str | None = None  # relation of objects[0] to objects[1]

    def __post_init__(self):
        if not 1 <= len(self.objects) <= 2:
            raise PromptError("a scene holds one or two objects")
        for o in self.objects:
            if o.shape not in SHAPES or o.color not in COLORS:
                raise PromptError(f"unknown object {o}")
        if (len(self.objects) == 2) != (self.relation is not None):
            raise PromptError("two objects need a relation, one object none")
        if self.relation is not None and self.relation not in RELATIONS:
            raise PromptError(f"unknown relation {self.relation!r}")
        if self.context is not None and (self.context not in CONTEXTS or len(self.objects) != 1):
            raise PromptError(f"bad context {self.context!r}")

    @property
    def category(self) -> str:
        return category_of(len(self.objects), self.context)

    def caption(self, view: str | None = None) -> str:
        return compose_caption([o.phrase() for o in self.objects], self.context, self.relation, view)

    def primitives(self) -> list[Primitive]:
        a = self.objects[0]
        if len(self.objects) == 1:
            prims = [Primitive(a.shape, (0.0, 0.0, 0.0), 1.0, COLORS[a.color])]
            if self.context == "checkered floor":
                prims.append(Primitive("box", (0.0, 0.0, BOTTOM[a.shape] - 0.03), 1.0, (0.9, 0.9, 0.9), half=(0.9, 0.9, 0.03), checker=True))
            elif self.context == "pedestal":
                prims.append(Primitive("pedestal", (0.0, 0.0, BOTTOM[a.shape] - 0.15), 1.0, (0.76, 0.72, 0.64), half=(0.0, 0.0, 0.15), radius=0.42))
            elif self.context == "mat":
                prims.append(Primitive("box", (0.0, 0.0, BOTTOM[a.shape] - 0.02), 1.0, (0.40, 0.20, 0.14), half=(0.6, 0.6, 0.02)))
            return prims
        b = self.objects[1]
        s = PAIR_SCALE
        if self.relation == "on top of":
            height = s * (TOP[a.shape] - BOTTOM[a.shape]) + s * (TOP[b.shape] - BOTTOM[b.shape])
            zb = -height / 2 - s * BOTTOM[b.shape]
            za = zb + s * TOP[b.shape] - s * BOTTOM[a.shape]
            return [Primitive(a.shape, (0.0, 0.0, za), s, COLORS[a.color]), Primitive(b.shape, (0.0, 0.0, zb), s, COLORS[b.color])]
        ya = -PAIR_OFFSET if self.relation == "to the left of" else PAIR_OFFSET
        return [Primitive(a.shape, (0.0, ya, 0.0), s, COLORS[a.color]), Primitive(b.shape, (0.0, -ya, 0.0), s, COLORS[b.color])]

    def canonical(self) -> "Scene":
        """The same layout, described with "to the left of" rather than "to the right of"."""
        if self.relation == "to the right of":
            return Scene((self.objects[1], self.objects[0]), relation="to the left of")
        return self


_COLOR = "|".join(COLORS)
_SHAPE = "|".join(SHAPES)
_OBJ = rf"an? ({_COLOR}) ({_SHAPE})"
_PATTERN = re.compile(
    rf"^{_OBJ}(?: on an? ({'|'.join(CONTEXTS)})| ({'|'.join(RELATIONS)}) {_OBJ})?(?:\s*,\s*({'|'.join(VIEWS)}) view)?$"
)


def normalize_prompt(prompt: str) -> str:
    return " ".join(prompt.lower().replace(",", " , ").split()).replace(" ,", ",").strip(" .")


def unknown_words(prompt: str) -> list[str]:
    words = normalize_prompt(prompt).replace(",", " ").split()
    return [w for w in words if w not in VOCABULARY]


def parse_prompt(prompt: str) -> tuple[Scene, str | None]:
    """Read a world caption back into its scene (and its view suffix, if any)."""
    text = normalize_prompt(prompt)
    m = _PATTERN.match(text)
    if not m:
        raise PromptError(f"not a caption of the world: {prompt!r}")
    c1, s1, ctx, rel, c2, s2, view = m.groups()
    objs = (WorldObject(s1, c1),) + ((WorldObject(s2, c2),) if rel else ())
    return Scene(objs, context=ctx, relation=rel), view


def random_scene(rng: random.Random, weights=(0.5, 0.25, 0.25)) -> Scene:
    category = rng.choices(CATEGORIES, weights=weights)[0]
    a = WorldObject(rng.choice(SHAPES), rng.choice(list(COLORS)))
    if category == "single":
        return Scene((a,))
    if category == "surroundings":
        return Scene((a,), context=rng.choice(CONTEXTS))
    while True:
        b = WorldObject(rng.choice(SHAPES), rng.choice(list(COLORS)))
        if b != a:
            return Scene((a, b), relation=rng.choice(RELATIONS))


def all_single_scenes() -> list[Scene]:
    return [Scene((WorldObject(s, c),)) for s in SHAPES for c in COLORS]
