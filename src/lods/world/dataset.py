"""Renders of the world with their captions: the training set of the embedded prior and of the judge."""

from __future__ import annotations

import json
import os
import random
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..render.cameras import orbit_cameras, view_label
from .render import render_scene
from .scene import Scene, random_scene
from .variation import CANONICAL, random_variation

ELEVATION_RANGE = (-10.0, 70.0)
DISTANCE_RANGE = (2.3, 2.7)
FOV_DEG = 40.0


@dataclass
class WorldRenders:
    images: np.ndarray  # (N, 3, S, S) uint8
    captions: list[str]  # scene captions, without the view suffix
    views: list[str]  # DreamFusion view label of each image's camera
    labels: list[dict]  # the scene's facts (category, shapes, colours, context, relation)

    def __len__(self) -> int:
        return len(self.captions)

    def save(self, path: Path) -> None:
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez_compressed(tmp, images=self.images, meta=np.array(json.dumps({"captions": self.captions, "views": self.views, "labels": self.labels})))
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> "WorldRenders":
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f["meta"]))
            return cls(f["images"], meta["captions"], meta["views"], meta["labels"])


def scene_labels(scene: Scene) -> dict:
    s = scene.canonical()
    objs = [{"shape": o.shape, "color": o.color} for o in s.objects]
    return {"category": s.category, "objects": objs, "context": s.context, "relation": s.relation}


def _render_chunk(args) -> tuple[np.ndarray, list, list, list]:
    seed, start, count, views_per_scene, size, vary = args
    torch.set_num_threads(1)
    images, captions, views, labels = [], [], [], []
    for i in range(start, start + count):
        rng = random.Random(f"{seed}-{i}")
        scene = random_scene(rng)
        el = [rng.uniform(*ELEVATION_RANGE) for _ in range(views_per_scene)]
        az = [rng.uniform(-180.0, 180.0) for _ in range(views_per_scene)]
        dist = [rng.uniform(*DISTANCE_RANGE) for _ in range(views_per_scene)]
        cams = orbit_cameras(torch.tensor(el), torch.tensor(az), torch.tensor(dist), FOV_DEG)
        variation = random_variation(rng, len(scene.objects)) if vary else CANONICAL
        rgb = render_scene(scene, cams, size=size, variation=variation)["rgb"]
        images.append((rgb * 255).round().clamp(0, 255).to(torch.uint8).numpy())
        for e, a in zip(el, az):
            captions.append(scene.caption())
            views.append(view_label(e, a))
            labels.append(scene_labels(scene))
    return np.concatenate(images), captions, views, labels


def render_world(n_scenes: int, views_per_scene: int = 4, seed: int = 0, size: int = 32, workers: int = 1, chunk: int = 250,
                 vary: bool = True) -> WorldRenders:
    """Random scenes of the world, each seen from `views_per_scene` random cameras. Deterministic in `seed`.

    `vary` draws each scene's shades and light (world/variation.py); False renders every scene canonically."""
    jobs = [(seed, s, min(chunk, n_scenes - s), views_per_scene, size, vary) for s in range(0, n_scenes, chunk)]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_render_chunk, jobs))
    else:
        parts = [_render_chunk(j) for j in jobs]
    return WorldRenders(
        np.concatenate([p[0] for p in parts]),
        [c for p in parts for c in p[1]],
        [v for p in parts for v in p[2]],
        [lab for p in parts for lab in p[3]],
    )
