"""Fixed prompt suites for the benchmarks: the world's three categories, and T3Bench's 300 prompts.

Both suites use T3Bench's three categories (single object, object with surroundings, multiple objects).
The world suite is chosen deterministically and balanced: among the captions of a category it greedily picks
the one whose shapes, colours, context or relation have been used least so far (ties broken by a fixed
shuffle), so a few prompts already cover many shapes and colours. The same arguments give the same suite on
every machine and Python version.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from importlib import resources

from ..errors import UserError
from ..world.scene import CATEGORIES, parse_prompt

SUITES = ("world", "t3bench")
T3BENCH_FILES = {"single": "prompt_single.txt", "surroundings": "prompt_surr.txt", "multi": "prompt_multi.txt"}
CATEGORY_ALIASES = {"single": "single", "surroundings": "surroundings", "surr": "surroundings", "multi": "multi",
                    "multiple": "multi"}
DEFAULT_PROMPTS_PER_CATEGORY = 10


@dataclass(frozen=True)
class SuitePrompt:
    category: str
    prompt: str


def parse_categories(text: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """'single,surr' → ['single', 'surroundings'] (in the canonical order); None or '' → all three."""
    if text is None or text == "" or text == []:
        return list(CATEGORIES)
    items = [s.strip().lower() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    unknown = [s for s in items if s not in CATEGORY_ALIASES]
    if unknown:
        raise UserError(f"unknown category {unknown[0]!r}; choose from: {', '.join(CATEGORIES)}")
    chosen = {CATEGORY_ALIASES[s] for s in items}
    return [c for c in CATEGORIES if c in chosen]


def _features(prompt: str) -> list[str]:
    scene, _ = parse_prompt(prompt)
    feats = []
    for i, o in enumerate(scene.objects):
        feats += [f"shape:{o.shape}", f"color:{o.color}", f"object{i}:{o.shape}"]
    if scene.context:
        feats.append(f"context:{scene.context}")
    if scene.relation:
        feats.append(f"relation:{scene.relation}")
    return feats


def world_prompts(category: str, k: int, seed: int = 0) -> list[str]:
    """`k` captions of one world category, balanced over shapes, colours, contexts and relations."""
    from ..evaluate.world_eval import all_prompts

    candidates = all_prompts(category)
    if k > len(candidates):
        raise UserError(f"the world has only {len(candidates)} {category} prompts; asked for {k}")
    random.Random(f"lods-suite-{category}-{seed}").shuffle(candidates)
    feats = {p: _features(p) for p in candidates}
    used: dict[str, int] = {}
    chosen: list[str] = []
    remaining = list(candidates)
    for _ in range(k):
        # least-used worst feature first, then the least total use; the shuffle order breaks ties
        best = min(remaining, key=lambda p: (max(used.get(f, 0) for f in feats[p]), sum(used.get(f, 0) for f in feats[p])))
        remaining.remove(best)
        chosen.append(best)
        for f in feats[best]:
            used[f] = used.get(f, 0) + 1
    return chosen


def world_suite(prompts_per_category: int = DEFAULT_PROMPTS_PER_CATEGORY, categories=None, seed: int = 0) -> list[SuitePrompt]:
    if prompts_per_category < 1:
        raise UserError(f"--prompts-per-category must be at least 1, got {prompts_per_category}")
    return [SuitePrompt(c, p) for c in parse_categories(categories) for p in world_prompts(c, prompts_per_category, seed)]


def t3bench_prompts(category: str) -> list[str]:
    """The 100 T3Bench prompts of a category, in the benchmark's file order."""
    name = T3BENCH_FILES[CATEGORY_ALIASES[category]]
    text = (resources.files("lods") / "data" / "t3bench" / name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def t3bench_suite(prompts_per_category: int | None = None, categories=None) -> list[SuitePrompt]:
    """T3Bench (300 prompts); `prompts_per_category` keeps the first K of each category (None: all 100)."""
    if prompts_per_category is not None and prompts_per_category < 1:
        raise UserError(f"--prompts-per-category must be at least 1, got {prompts_per_category}")
    out = []
    for c in parse_categories(categories):
        prompts = t3bench_prompts(c)
        out += [SuitePrompt(c, p) for p in prompts[: prompts_per_category or len(prompts)]]
    return out


def load_suite(name: str, prompts_per_category: int | None = None, categories=None, seed: int = 0) -> list[SuitePrompt]:
    if name == "world":
        return world_suite(DEFAULT_PROMPTS_PER_CATEGORY if prompts_per_category is None else prompts_per_category, categories, seed)
    if name == "t3bench":
        return t3bench_suite(prompts_per_category, categories)
    raise UserError(f"unknown suite {name!r}; choose one of: {', '.join(SUITES)}")


def slugify(prompt: str, max_len: int = 60) -> str:
    """A file-name-safe slug of a prompt ('A cactus, pink!' → 'a-cactus-pink')."""
    slug = "-".join(re.sub(r"[^a-z0-9]+", " ", prompt.lower()).split())[:max_len].strip("-")
    return slug or "prompt"


def unique_slugs(prompts: list[str]) -> dict[str, str]:
    """Slugs for a list of prompts, suffixed -2, -3... where two prompts would share one."""
    out: dict[str, str] = {}
    taken: set[str] = set()
    for p in prompts:
        if p in out:
            continue
        base = slug = slugify(p)
        k = 2
        while slug in taken:
            slug, k = f"{base}-{k}", k + 1
        taken.add(slug)
        out[p] = slug
    return out
